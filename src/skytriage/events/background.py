"""The sliding ground: its apparent velocity, estimated from the cube, and a background model.

From the ISS the ground slides across the focal surface at about a pixel per second, so a
pixel's background changes as city lights and clouds pass. Nothing in the data says how
fast: :func:`ground_velocity` measures it by phase correlation of block-averaged frames
some seconds apart (on log counts minus their time average, which removes the fixed
flat-field pattern). :func:`background_model` then predicts every frame from blocks of
frames before and after it, each moved by the ground's displacement in between, and takes
their mean without the highest and the lowest: a transient in the frame itself (meteor,
lightning) does not leak into its own background, and the ground's motion does not smear
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

#: Frames per block of the background model.
BLOCK = 16
#: Blocks on each side of a block that predict it (their trimmed mean).
NEIGHBOURS = 3
#: Lags (in blocks) between the block images that are phase-correlated.
VELOCITY_LAGS = (6, 12)
#: Phase-correlation response below which a pair of blocks says nothing.
MIN_RESPONSE = 0.15


@dataclass
class Background:
    """The background of one cube, kept per block of frames and interpolated on demand.

    Attributes
    ----------
    blocks : ndarray of float32, shape (B, ny, nx)
        Background counts per frame at each block's centre (>= 0).
    centres : ndarray of float64, shape (B,)
        Mean frame index of each block.
    velocity : (float, float)
        Ground motion (vx, vy) in px per frame; (0, 0) on a scene without structure.
    gain : float
        Variance per count of background, measured on the residuals (1 for Poisson
        counts); the noise of a pixel-frame is ``sqrt(gain * max(expected, 1))``.
    """

    blocks: np.ndarray
    centres: np.ndarray
    velocity: tuple[float, float]
    gain: float = 1.0
    _right_of_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64),
                                        repr=False, compare=False)

    def expected(self, start: int, stop: int) -> np.ndarray:
        """Background counts of frames ``start..stop-1``, float32 (stop - start, ny, nx)."""
        return interpolate_blocks(self.blocks, self.centres, start, stop)

    def expected_at(self, t: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Background counts at pixel-frames (t, y, x), float32 (n,)."""
        if len(self.centres) == 1:
            return self.blocks[0, y, x]
        right = self._right_block(t)
        left = right - 1
        w = np.clip((t - self.centres[left]) / (self.centres[right] - self.centres[left]),
                    0, 1).astype(np.float32)
        lo, hi = self.blocks[left, y, x], self.blocks[right, y, x]
        return lo + (hi - lo) * w

    def _right_block(self, t: np.ndarray) -> np.ndarray:
        """Index of the first block centre at or after each frame t (clipped to 1..B-1)."""
        n_frames = int(t.max()) + 1 if t.size else 0
        if len(self._right_of_frame) < n_frames:  # a table per frame: cheaper than a search
            frames = np.arange(max(n_frames, int(self.centres[-1]) + 2))
            self._right_of_frame = np.clip(np.searchsorted(self.centres, frames), 1,
                                           len(self.centres) - 1)
        return self._right_of_frame[t]

    def significance(self, cube: np.ndarray, start: int, stop: int,
                     out: np.ndarray | None = None) -> np.ndarray:
        """``(counts - expected) / sqrt(gain * max(expected, 1))`` of frames start..stop-1.

        Written into ``out`` (float32, shape (stop - start, ny, nx)) when given.
        """
        expected = self.expected(start, stop)
        z = np.subtract(cube[start:stop], expected, out=out)
        np.maximum(expected, 1, out=expected)
        expected *= np.float32(self.gain)
        np.sqrt(expected, out=expected)
        z /= expected
        return z


def block_means(cube: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Mean image of each block of ``block`` frames and the block's mean frame index.

    Returns
    -------
    (ndarray of float32, shape (B, ny, nx), ndarray of float64, shape (B,))
    """
    n_full = len(cube) // block
    sums = cube[:n_full * block].reshape(n_full, block, *cube.shape[1:]).sum(axis=1)
    means = sums * np.float32(1 / block)
    centres = np.arange(n_full) * block + (block - 1) / 2
    if len(cube) > n_full * block:
        tail = cube[n_full * block:]
        means = np.concatenate([means, tail.mean(axis=0, dtype=np.float32)[None]])
        centres = np.append(centres, n_full * block + (len(tail) - 1) / 2)
    return means, centres


def ground_velocity(means: np.ndarray, centres: np.ndarray) -> tuple[float, float]:
    """Apparent ground velocity (vx, vy) in px per frame from block-mean images.

    Parameters
    ----------
    means : ndarray, shape (B, ny, nx)
        Block-mean images (see :func:`block_means`).
    centres : ndarray, shape (B,)
        Their mean frame indices.

    Returns
    -------
    (float, float)
        The response-weighted median over block pairs of shift / lag; (0, 0) when no
        pair correlates (a featureless scene, where the motion does not matter).
    """
    logs = np.log1p(np.maximum(means, 0)).astype(np.float64)
    logs -= logs.mean(axis=0)
    window = cv2.createHanningWindow(logs.shape[1:][::-1], cv2.CV_64F)
    estimates, weights = [], []
    for lag in VELOCITY_LAGS:
        for b in range(0, len(logs) - lag, max(1, lag // 3)):
            (dx, dy), response = cv2.phaseCorrelate(logs[b], logs[b + lag], window)
            if response >= MIN_RESPONSE:
                dt = centres[b + lag] - centres[b]
                estimates.append((dx / dt, dy / dt))
                weights.append(response)
    if not estimates:
        return 0.0, 0.0
    est, w = np.asarray(estimates), np.asarray(weights)
    return float(_weighted_median(est[:, 0], w)), float(_weighted_median(est[:, 1], w))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def shifted(images: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Sample every image at (x + dx, y + dy), bilinear; NaN outside the field.

    Parameters
    ----------
    images : ndarray, shape (B, ny, nx)
    dx, dy : float
        Offsets in px.

    Returns
    -------
    ndarray of float32, shape (B, ny, nx)
    """
    ix, fx = int(np.floor(dx)), np.float32(dx - np.floor(dx))
    iy, fy = int(np.floor(dy)), np.float32(dy - np.floor(dy))
    b, ny, nx = images.shape
    # pad wide enough that every sample (x + ix + {0, 1}, y + iy + {0, 1}) exists
    py, px = abs(iy) + 1, abs(ix) + 1
    padded = np.full((b, ny + 2 * py, nx + 2 * px), np.nan, np.float32)
    padded[:, py:py + ny, px:px + nx] = images

    def window(oy: int, ox: int) -> np.ndarray:
        return padded[:, py + oy:py + oy + ny, px + ox:px + ox + nx]

    top = window(iy, ix) * (1 - fx) + window(iy, ix + 1) * fx
    bottom = window(iy + 1, ix) * (1 - fx) + window(iy + 1, ix + 1) * fx
    return top * (1 - fy) + bottom * fy


def block_background(means: np.ndarray, velocity_per_block: tuple[float, float],
                     neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Background of each block: trimmed mean of its neighbour blocks moved with the ground.

    Parameters
    ----------
    means : ndarray, shape (B, ny, nx)
        Block-mean images.
    velocity_per_block : (float, float)
        Ground motion in px per block.
    neighbours : int
        Blocks on each side used (the block itself is not).

    Returns
    -------
    ndarray of float32, shape (B, ny, nx)
    """
    vx, vy = velocity_per_block
    n = len(means)
    stack = np.full((2 * neighbours, *means.shape), np.nan, np.float32)
    slot = 0
    for k in (*range(-neighbours, 0), *range(1, neighbours + 1)):
        lo, hi = max(0, -k), min(n, n - k)
        if lo < hi:
            stack[slot, lo:hi] = shifted(means[lo + k:hi + k], k * vx, k * vy)
        slot += 1
    model = trimmed_mean(stack)
    return np.where(np.isfinite(model), model, means).astype(np.float32)


def trimmed_mean(stack: np.ndarray) -> np.ndarray:
    """Mean over axis 0 without the lowest and the highest value, ignoring NaN.

    With fewer than three values left it is their plain mean; NaN where none is.
    """
    finite = np.isfinite(stack)
    valid = finite.sum(axis=0, dtype=np.int16)
    total = np.where(finite, stack, np.float32(0)).sum(axis=0, dtype=np.float32)
    lowest, highest = np.fmin.reduce(stack, axis=0), np.fmax.reduce(stack, axis=0)
    trimmed = valid >= 3
    total[trimmed] -= lowest[trimmed] + highest[trimmed]
    count = np.where(trimmed, valid - 2, valid).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.float32(np.nan))


def interpolate_blocks(block_images: np.ndarray, centres: np.ndarray, start: int, stop: int
                       ) -> np.ndarray:
    """Linear interpolation in time of block images to frames ``start..stop-1``.

    Returns
    -------
    ndarray of float32, shape (stop - start, ny, nx); flat beyond the first and last centre.
    """
    out = np.empty((stop - start, *block_images.shape[1:]), np.float32)
    if len(centres) == 1:
        out[:] = block_images[0]
        return out
    # frame t lies between centres[b] and centres[b + 1] for b = segment[t]
    t = np.arange(start, stop)
    segment = np.clip(np.searchsorted(centres, t, side="right") - 1, 0, len(centres) - 2)
    bounds = np.flatnonzero(np.diff(segment)) + 1
    for lo_i, hi_i in zip([0, *bounds], [*bounds, len(t)], strict=True):
        b = segment[lo_i]
        w = ((t[lo_i:hi_i] - centres[b]) / (centres[b + 1] - centres[b])).astype(np.float32)
        np.clip(w, 0, 1, out=w)
        step = block_images[b + 1] - block_images[b]
        np.multiply(step[None], w[:, None, None], out=out[lo_i:hi_i])
        out[lo_i:hi_i] += block_images[b]
    return out


def background_model(cube: np.ndarray, n_samples: int = 50_000) -> Background:
    """The background of a cube: ground velocity, block backgrounds and noise gain.

    Parameters
    ----------
    cube : ndarray, shape (T, ny, nx)
        Counts per frame.
    n_samples : int
        Pixel-frames drawn (with a fixed seed) to measure the noise gain.

    Returns
    -------
    Background
    """
    means, centres = block_means(cube)
    vx, vy = ground_velocity(means, centres)
    blocks = np.maximum(block_background(means, (BLOCK * vx, BLOCK * vy)), 0)
    background = Background(blocks=blocks, centres=centres, velocity=(vx, vy))
    rng = np.random.default_rng(0)
    t, y, x = (rng.integers(0, n, n_samples) for n in cube.shape)
    expected = np.maximum(background.expected_at(t, y, x), 1)
    gain = float(np.median((cube[t, y, x] - expected) ** 2 / expected) / 0.4549)  # chi2(1)
    background.gain = gain if np.isfinite(gain) and gain > 0 else 1.0
    return background
