"""The conventional trigger: a threshold over a moving background, no training.

The way fast-transient searches on UV telescopes have long worked, and the baseline the
learned pipeline is measured against (speed and quality, same cube):

1. per pixel, the mean and variance of the :data:`HISTORY` frames that end
   :data:`GUARD` frames before the current one (running sums);
2. the sum of the last :data:`SUM_FRAMES` frames triggers where it exceeds its expected
   value by :data:`K_SIGMA` standard deviations (the larger of the measured and the
   Poisson one);
3. triggered pixel-frames that touch in space or time (26-connectivity) form one event;
   its track is a weighted straight-line fit of its pixels against time;
4. an event is called a meteor when it lasts 0.15-10 s, never lights more than
   :data:`MAX_AREA` pixels in one frame, crosses at least 2 pixels and moves at 1.5-30 px/s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from skytriage.events.tracks import distinct_per_label, fit_tracks

HISTORY = 64
GUARD = 2
SUM_FRAMES = 3
K_SIGMA = 5.0
MAX_AREA = 12
METEOR_DURATION_S = (0.15, 10.0)
METEOR_SPEED = (1.5, 30.0)


def prefix_sums(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums of the counts and of their squares over frames, float64 (T + 1, ny, nx).

    Accumulated frame by frame, as a trigger on board would (and faster than ``cumsum``
    along the first axis of a cube).
    """
    sums = np.zeros((len(cube) + 1, *cube.shape[1:]), np.float64)
    squares = np.zeros_like(sums)
    for t, frame in enumerate(cube):
        np.add(sums[t], frame, out=sums[t + 1])
        np.add(squares[t], np.square(frame, dtype=np.float64), out=squares[t + 1])
    return sums, squares


def moving_background(sums: np.ndarray, squares: np.ndarray, history: int = HISTORY,
                      guard: int = GUARD) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each pixel over the ``history`` frames ending ``guard`` frames
    before each frame (the first full window for the first frames).

    Parameters
    ----------
    sums, squares : ndarrays, shape (T + 1, ny, nx)
        From :func:`prefix_sums`.

    Returns
    -------
    (mean, var) : ndarrays of float32, shape (T, ny, nx)
        Differences of the running sums are taken in float64, then stored in float32.
    """
    n = len(sums) - 1
    history = min(history, max(1, n - guard))
    first = history + guard  # frames before this one use the first full window
    mean = np.empty((n, *sums.shape[1:]), np.float32)
    var = np.empty_like(mean)
    np.subtract(sums[history:n - guard], sums[:n - guard - history], out=mean[first:],
                casting="same_kind")
    np.subtract(squares[history:n - guard], squares[:n - guard - history], out=var[first:],
                casting="same_kind")
    mean[:first] = sums[history] - sums[0]
    var[:first] = squares[history] - squares[0]
    mean *= np.float32(1 / history)
    var *= np.float32(1 / history)
    var -= mean**2
    return mean, var


def trigger_mask(cube: np.ndarray, k_sigma: float = K_SIGMA, history: int = HISTORY,
                 guard: int = GUARD, sum_frames: int = SUM_FRAMES
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-frames where the last ``sum_frames`` frames exceed the moving background.

    Returns
    -------
    (mask, mean) : ndarray of bool and ndarray of float32, shape (T, ny, nx)
        The trigger and the moving mean it was measured against.
    """
    sums, squares = prefix_sums(cube)
    mean, var = moving_background(sums, squares, history, guard)
    np.maximum(var, mean, out=var)  # at least the Poisson variance
    window = np.empty_like(mean)
    n = len(cube)
    np.subtract(sums[sum_frames:], sums[:n + 1 - sum_frames], out=window[sum_frames - 1:],
                casting="same_kind")
    window[:sum_frames - 1] = sums[1:sum_frames] - sums[0]
    np.sqrt(var, out=var)
    var *= np.float32(k_sigma * np.sqrt(sum_frames))
    var += np.float32(sum_frames) * mean
    return window > var, mean


def conventional_trigger(cube: np.ndarray, frame_time: float, k_sigma: float = K_SIGMA
                         ) -> pd.DataFrame:
    """Events of a cube found by the conventional trigger.

    Parameters
    ----------
    cube : ndarray, shape (T, ny, nx)
        Counts per frame.
    frame_time : float
        Seconds per frame.
    k_sigma : float
        Trigger threshold in standard deviations of the summed frames.

    Returns
    -------
    pandas.DataFrame
        ``event, kind, t_start, t_end, x, y, direction, speed, peak, n_pixels, max_area``;
        kind ``meteor`` or ``other``.
    """
    cube = np.asarray(cube, np.float32)
    mask, mean = trigger_mask(cube, k_sigma)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return pd.DataFrame(columns=["event", "kind", "t_start", "t_end", "x", "y", "direction",
                                     "speed", "peak", "n_pixels", "max_area"])
    t, y, x = np.nonzero(labels)
    label = labels[t, y, x] - 1
    excess = np.maximum(cube[t, y, x] - mean[t, y, x], 1e-3)
    table = fit_tracks(label, t, x, y, excess, n, frame_time)
    table["n_pixels"] = distinct_per_label(label, y * cube.shape[2] + x, n)
    table["max_area"] = _max_per_frame(label, t, n)
    duration = (table["t_end"] - table["t_start"] + 1) * frame_time
    speed = table["speed"].fillna(0)
    meteor = (duration.between(*METEOR_DURATION_S) & (table["max_area"] <= MAX_AREA)
              & (table["n_pixels"] >= 2) & speed.between(*METEOR_SPEED))
    table.insert(1, "kind", np.where(meteor, "meteor", "other"))
    return table


def _max_per_frame(label: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """Largest number of pixel-frames of a label in one frame."""
    span = int(t.max()) + 1
    keys, counts = np.unique(label.astype(np.int64) * span + t, return_counts=True)
    out = np.zeros(n, np.int64)
    np.maximum.at(out, keys // span, counts)
    return out
