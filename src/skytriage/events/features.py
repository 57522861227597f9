"""Per-pixel time-series windows and their features, the inputs of the pixel classifier.

The residual of every pixel-frame over the background model, in units of its noise (z),
is smoothed over 3 frames (``zs = (z[t-1] + z[t] + z[t+1]) / sqrt(3)``, unit variance on
noise). A *candidate* is a pixel-frame where ``zs`` reaches :data:`CANDIDATE_Z` and is the
largest of its pixel within :data:`SUPPRESS` frames. Each candidate gives a window of
:data:`WINDOW` frames of z centred on its peak (the study's protocol; 48 was best) and
the study's features after smoothing (highest and second peak, their positions,
variance) plus the shape of the peak (width, rise, fall, how much of it sits in one
frame) and its context in space: how many pixels of the frame are lit at the peak, and
when and how strongly the neighbours peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Frames per window (8-64 work; 48 was best in the study).
WINDOW = 48
#: Smoothed significance a pixel-frame needs to be a candidate.
CANDIDATE_Z = 4.0
#: A candidate is the highest of its pixel within this many frames on either side.
SUPPRESS = 12
#: Frames around the peak searched for the neighbours' peaks.
NEIGHBOUR_FRAMES = 8
#: Smoothed significance that counts a pixel as lit.
LIT_Z = 3.0
#: Frames of a cube processed at once where a pass over the whole cube would leave the
#: CPU cache (48 x 48 px: 1.2 MB of float32).
CACHE_FRAMES = 128
#: (dy, dx) of a pixel's eight neighbours.
NEIGHBOURS_8 = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))

FEATURE_NAMES = (
    "peak", "peak_raw", "second_peak", "second_offset", "variance", "smooth_variance",
    "width", "rise", "fall", "single_frame", "baseline", "n_above", "log_counts",
    "lit_in_frame", "lit_nearby", "neighbour_peak", "neighbour_lag", "neighbour_lag_spread",
    "n_neighbours_lit", "local_shift",
)


@dataclass
class Candidates:
    """Pixel-frames where a pixel's time series peaks.

    Attributes
    ----------
    t, y, x : ndarray of int64, shape (n,)
        Peak frame and pixel.
    windows : ndarray of float32, shape (n, WINDOW)
        z of the pixel, centred on the peak (index ``WINDOW // 2``); 0 beyond the cube.
    features : pandas.DataFrame
        :data:`FEATURE_NAMES`, one row per candidate.
    """

    t: np.ndarray
    y: np.ndarray
    x: np.ndarray
    windows: np.ndarray
    features: pd.DataFrame

    def __len__(self) -> int:
        return len(self.t)

    def subset(self, keep: np.ndarray) -> Candidates:
        """The candidates selected by a boolean mask or an index array."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return Candidates(self.t[index], self.y[index], self.x[index], self.windows[index],
                          self.features.iloc[index].reset_index(drop=True))


def concat(pieces: list[Candidates]) -> Candidates:
    """Candidates of several cubes or stretches in one set."""
    if len(pieces) == 1:
        return pieces[0]
    return Candidates(np.concatenate([p.t for p in pieces]),
                      np.concatenate([p.y for p in pieces]),
                      np.concatenate([p.x for p in pieces]),
                      np.concatenate([p.windows for p in pieces]),
                      pd.concat([p.features for p in pieces], ignore_index=True))


def smooth3(z: np.ndarray) -> np.ndarray:
    """``(z[t-1] + z[t] + z[t+1]) / sqrt(3)`` along axis 0 (edges use what exists)."""
    out = np.empty_like(z)
    n = len(z)
    for start in range(0, n, CACHE_FRAMES):  # in pieces that stay in the CPU cache
        stop = min(start + CACHE_FRAMES, n)
        piece = out[start:stop]
        np.copyto(piece, z[start:stop])
        if start > 0:
            piece += z[start - 1:stop - 1]
        else:
            piece[1:] += z[:stop - 1]
        if stop < n:
            piece += z[start + 1:stop + 1]
        else:
            piece[:-1] += z[start + 1:stop]
        piece *= np.float32(1 / np.sqrt(3))
    return out


def find_peaks(zs: np.ndarray, threshold: float = CANDIDATE_Z,
               suppress: int = SUPPRESS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-frames where ``zs >= threshold`` and no higher value of the pixel lies within
    ``suppress`` frames (an equal one only later).

    Returns
    -------
    (t, y, x) : ndarrays of int64
    """
    flat = np.flatnonzero(zs >= threshold)  # faster than a 3-D nonzero, same order
    t, rest = np.divmod(flat, zs.shape[1] * zs.shape[2])
    y, x = np.divmod(rest, zs.shape[2])
    if len(t) == 0:
        return t, y, x
    values = zs[t, y, x]
    pixel = y * zs.shape[2] + x
    order = np.lexsort((t, pixel))
    pixel, times, values = pixel[order], t[order], values[order]
    keep = np.ones(len(order), bool)
    for k in range(1, 2 * suppress + 2):
        same = (pixel[k:] == pixel[:-k]) & (times[k:] - times[:-k] <= suppress)
        if not same.any():
            break
        keep[k:] &= ~same | (values[k:] > values[:-k])  # a later one must be higher
        keep[:-k] &= ~same | (values[:-k] >= values[k:])  # an earlier one at least as high
    sel = order[keep]
    sel = sel[np.lexsort((x[sel], y[sel], t[sel]))]
    return t[sel], y[sel], x[sel]


def extract_windows(z: np.ndarray, t: np.ndarray, y: np.ndarray, x: np.ndarray,
                    size: int = WINDOW) -> np.ndarray:
    """Windows of ``size`` frames of ``z`` at each (y, x), the peak at ``size // 2``.

    Returns
    -------
    ndarray of float32, shape (n, size); frames beyond the cube are 0.
    """
    offsets = np.arange(size) - size // 2
    frames = t[:, None] + offsets[None, :]
    inside = (frames >= 0) & (frames < z.shape[0])
    values = z[np.clip(frames, 0, z.shape[0] - 1), y[:, None], x[:, None]]
    return np.where(inside, values, 0).astype(np.float32)


def _smooth_rows(w: np.ndarray) -> np.ndarray:
    out = w.copy()
    out[:, 1:] += w[:, :-1]
    out[:, :-1] += w[:, 1:]
    return out * np.float32(1 / np.sqrt(3))


def window_features(windows: np.ndarray) -> dict[str, np.ndarray]:
    """Features of each window's time series (the study's and the peak's shape).

    Parameters
    ----------
    windows : ndarray, shape (n, N)
        z time series, peak of the smoothed series at ``N // 2``.

    Returns
    -------
    dict of name -> ndarray of float32, shape (n,)
    """
    n, size = windows.shape
    centre = size // 2
    ws = _smooth_rows(windows)
    rows = np.arange(n)
    peak = ws[:, centre]
    far = np.abs(np.arange(size) - centre)[None, :] > 3
    masked = np.where(far, ws, -np.inf)
    second_at = masked.argmax(axis=1)
    second = masked[rows, second_at]
    half = ws >= 0.5 * peak[:, None]
    left = _run_length(half[:, centre::-1])
    right = _run_length(half[:, centre:])
    raw_centre = windows[:, centre - 1:centre + 2]
    single = raw_centre.max(axis=1) / np.maximum(np.abs(raw_centre).sum(axis=1), 1e-3)
    outside = np.abs(np.arange(size) - centre)[None, :] > 8
    return {
        "peak": peak,
        "peak_raw": windows[:, centre - 1:centre + 2].max(axis=1),
        "second_peak": second / np.maximum(peak, 1e-3),
        "second_offset": np.abs(second_at - centre).astype(np.float32),
        "variance": windows.var(axis=1),
        "smooth_variance": ws.var(axis=1) / np.maximum(peak, 1e-3) ** 2,
        "width": (left + right - 1).astype(np.float32),
        "rise": left.astype(np.float32),
        "fall": right.astype(np.float32),
        "single_frame": single,
        "baseline": np.where(outside, windows, 0).sum(axis=1) / outside.sum(),
        "n_above": (windows > 2.0).sum(axis=1).astype(np.float32),
    }


def _run_length(flags: np.ndarray) -> np.ndarray:
    """Length of the leading run of True in each row."""
    broken = ~flags
    first = np.where(broken.any(axis=1), broken.argmax(axis=1), flags.shape[1])
    return first


def context_features(zs: np.ndarray, residual_peak: np.ndarray, t: np.ndarray, y: np.ndarray,
                     x: np.ndarray) -> dict[str, np.ndarray]:
    """Where a candidate sits in space: lit pixels in its frame and nearby, its neighbours.

    Parameters
    ----------
    zs : ndarray, shape (T, ny, nx)
        Smoothed significance.
    residual_peak : ndarray, shape (n,)
        Counts above the background at each candidate.
    t, y, x : ndarrays of int64, shape (n,)
        Candidates.

    Returns
    -------
    dict of name -> ndarray of float32, shape (n,)
    """
    n_frames, ny, nx = zs.shape
    frames_used, where = np.unique(t, return_inverse=True)
    lit_per_frame = (zs[frames_used] >= LIT_Z).sum(axis=(1, 2))[where]
    offsets = np.arange(-NEIGHBOUR_FRAMES, NEIGHBOUR_FRAMES + 1)
    frames = np.clip(t[:, None] + offsets[None, :], 0, n_frames - 1)
    peak = zs[t, y, x]
    ring_y, ring_x = (np.array(v) for v in zip(*NEIGHBOURS_8, strict=True))
    yy = np.clip(y[:, None] + ring_y[None, :], 0, ny - 1)
    xx = np.clip(x[:, None] + ring_x[None, :], 0, nx - 1)
    series = zs[frames[:, :, None], yy[:, None, :], xx[:, None, :]]  # (n, frames, 8)
    at = series.argmax(axis=1)
    value = np.take_along_axis(series, at[:, None, :], axis=1)[:, 0]  # (n, 8)
    lag = offsets[at].astype(np.float32)
    strongest = value.argmax(axis=1)  # the first of equals, as the loop over dy, dx had it
    rows = np.arange(len(t))
    best, best_lag = value[rows, strongest], lag[rows, strongest]
    lit = value >= LIT_Z
    lit_count = lit.sum(axis=1).astype(np.float32)
    lag_stack = np.where(lit, lag, np.nan)
    any_lit = lit.any(axis=1)
    with np.errstate(invalid="ignore"):
        spread = np.where(any_lit, np.fmax.reduce(lag_stack, axis=1)
                          - np.fmin.reduce(lag_stack, axis=1), 0)
    near = np.arange(-2, 3)
    yy = np.clip(y[:, None] + near[None, :], 0, ny - 1)
    xx = np.clip(x[:, None] + near[None, :], 0, nx - 1)
    patch = (zs[t[:, None, None], yy[:, :, None], xx[:, None, :]] >= LIT_Z).sum(
        axis=(1, 2)).astype(np.float32)
    return {
        "log_counts": np.log10(np.maximum(residual_peak, 0.1)),
        "lit_in_frame": np.log1p(lit_per_frame).astype(np.float32),
        "lit_nearby": patch,
        "neighbour_peak": best / np.maximum(peak, 1e-3),
        "neighbour_lag": np.abs(best_lag),
        "neighbour_lag_spread": spread.astype(np.float32),
        "n_neighbours_lit": lit_count,
        "local_shift": _local_shift(zs, t, y, x),
    }


def _local_shift(zs: np.ndarray, t: np.ndarray, y: np.ndarray, x: np.ndarray,
                 half: int = 2, lag: int = 3) -> np.ndarray:
    """How far (px) the light centroid of the 5x5 patch moves from t - lag to t + lag."""
    n_frames, ny, nx = zs.shape
    offsets = np.arange(-half, half + 1)
    yy = np.clip(y[:, None] + offsets[None, :], 0, ny - 1)
    xx = np.clip(x[:, None] + offsets[None, :], 0, nx - 1)

    def centroid(frames: np.ndarray) -> np.ndarray:
        patch = np.maximum(zs[frames[:, None, None], yy[:, :, None], xx[:, None, :]] - 1, 0)
        total = np.maximum(patch.sum(axis=(1, 2)), 1e-3)
        cy = (patch.sum(axis=2) * offsets).sum(axis=1) / total
        cx = (patch.sum(axis=1) * offsets).sum(axis=1) / total
        return np.stack([cx, cy], axis=1)

    before = centroid(np.clip(t - lag, 0, n_frames - 1))
    after = centroid(np.clip(t + lag, 0, n_frames - 1))
    return np.hypot(*(after - before).T).astype(np.float32)


def candidates(z: np.ndarray, zs: np.ndarray, t: np.ndarray, y: np.ndarray, x: np.ndarray,
               residual_peak: np.ndarray) -> Candidates:
    """Candidates with their windows and features.

    Parameters
    ----------
    z : ndarray, shape (T, ny, nx)
        Residual over the background in noise units.
    zs : ndarray, shape (T, ny, nx)
        ``smooth3(z)``.
    t, y, x : ndarrays of int64, shape (n,)
        The peaks (:func:`find_peaks`).
    residual_peak : ndarray, shape (n,)
        Counts above the background at each peak.

    Returns
    -------
    Candidates
    """
    windows = extract_windows(z, t, y, x)
    columns = window_features(windows) if len(t) else {}
    columns.update(context_features(zs, residual_peak, t, y, x) if len(t) else {})
    features = pd.DataFrame({name: columns.get(name, np.zeros(0, np.float32))
                             for name in FEATURE_NAMES}).astype(np.float32)
    return Candidates(t, y, x, windows, features)
