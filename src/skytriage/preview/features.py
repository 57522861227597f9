"""Per-frame features for preview.

Every function takes one frame and returns a flat ``dict`` of floats. Intensities are in
ADU as read (no gain applied); "sigma" is the robust sky noise in ADU from the
histogram. Robust statistics come from one 65536-bin histogram of the (uint16) frame:
on a 61-Mpix frame that costs ~0.1 s where sigma clipping costs seconds.

This is the first feature set; the preview issue (#3) adds blobs, streaks and the
relative features.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FEATURE_VERSION = 1
_N_BINS = 65536
_BLOCK = 64


def quantise(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Integer levels for the histogram.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        uint16 frame (used as is) or any real-valued frame.

    Returns
    -------
    levels : ndarray of uint16, shape (ny, nx)
        ``data - offset`` rounded and clipped to 0..65535.
    offset : float
        The ADU value of level 0.
    """
    if data.dtype == np.uint16:
        return data, 0.0
    finite = data[np.isfinite(data)]
    offset = float(np.floor(finite.min())) if finite.size else 0.0
    levels = np.clip(np.rint(np.nan_to_num(data, nan=offset) - offset), 0, _N_BINS - 1)
    return levels.astype(np.uint16), offset


def _percentile(counts: np.ndarray, cdf: np.ndarray, q: float) -> float:
    """The level below which a fraction ``q`` (0..1) of pixels lies.

    Level ``i`` stands for the interval ``[i - 0.5, i + 0.5)``; the result is interpolated
    linearly inside the bin, so integer data still give sub-ADU percentiles.
    """
    target = q * cdf[-1]
    i = int(np.searchsorted(cdf, target, side="left"))
    below = cdf[i - 1] if i > 0 else 0.0
    return float(i - 0.5 + (target - below) / max(counts[i], 1.0))


def histogram_statistics(data: np.ndarray) -> dict[str, float]:
    """Statistics, entropy and sky-relative pixel fractions from one histogram.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        The frame in ADU.

    Returns
    -------
    dict
        ``mean, median, std, sigma`` (robust width of the sky histogram from the 16-50
        percentile span, which stars hardly touch; gradients and clouds widen it),
        ``p01, p99, max`` (ADU), ``entropy`` (bits), ``pct_low`` (% below sky − 3σ),
        ``pct_mid`` (% between sky + 3σ and + 20σ),
        ``pct_high`` (% above sky + 20σ), ``pct_saturated`` (% at the maximum level of
        a uint16 frame).
    """
    levels, offset = quantise(data)
    counts = np.bincount(levels.ravel(), minlength=_N_BINS).astype(np.float64)
    values = np.arange(counts.size, dtype=np.float64)
    n = counts.sum()
    cdf = np.cumsum(counts)
    mean = float((counts * values).sum() / n)
    std = float(np.sqrt(max((counts * (values - mean) ** 2).sum() / n, 0.0)))
    median = _percentile(counts, cdf, 0.5)
    sigma = max(median - _percentile(counts, cdf, 0.1587), 0.1)
    p = counts[counts > 0] / n

    def fraction_between(lo: float, hi: float) -> float:
        lo_i, hi_i = int(np.clip(np.ceil(lo), 0, _N_BINS)), int(np.clip(np.ceil(hi), 0, _N_BINS))
        return float(counts[lo_i:hi_i].sum() / n * 100.0)

    top = int(np.nonzero(counts)[0][-1])
    return {
        "mean": mean + offset,
        "median": median + offset,
        "std": std,
        "sigma": sigma,
        "p01": _percentile(counts, cdf, 0.01) + offset,
        "p99": _percentile(counts, cdf, 0.99) + offset,
        "max": top + offset,
        "entropy": float(-(p * np.log2(p)).sum()),
        "pct_low": fraction_between(0, median - 3 * sigma),
        "pct_mid": fraction_between(median + 3 * sigma, median + 20 * sigma),
        "pct_high": fraction_between(median + 20 * sigma, _N_BINS),
        "pct_saturated": float(counts[-1] / n * 100.0) if data.dtype == np.uint16 else 0.0,
    }


def laplacian(image: np.ndarray) -> np.ndarray:
    """5-point Laplacian of the interior pixels, shape (ny - 2, nx - 2), same dtype."""
    centre = image[1:-1, 1:-1]
    return (image[:-2, 1:-1] + image[2:, 1:-1] + image[1:-1, :-2] + image[1:-1, 2:]
            - 4 * centre)


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the interior pixels, shape (ny - 2, nx - 2)."""
    rows = image[:-2] + 2 * image[1:-1] + image[2:]  # vertical smoothing, (ny - 2, nx)
    gx = rows[:, 2:] - rows[:, :-2]
    cols = image[:, :-2] + 2 * image[:, 1:-1] + image[:, 2:]  # horizontal smoothing
    gy = cols[2:] - cols[:-2]
    return np.hypot(gx, gy)


def focus_features(data: np.ndarray, sigma: float) -> dict[str, float]:
    """Sharpness from the Laplacian and the Sobel gradient magnitude, in units of sky noise.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        The frame in ADU.
    sigma : float
        Robust sky noise in ADU (from :func:`histogram_statistics`).

    Returns
    -------
    dict
        ``lap_var, lap_max, sobel_var, sobel_max``: variance and maximum of the
        Laplacian and of the Sobel magnitude of ``data / sigma`` (border pixels excluded).
    """
    image = data.astype(np.float32) / np.float32(sigma)
    lap = laplacian(image)
    sobel = sobel_magnitude(image)
    return {
        "lap_var": float(lap.var(dtype=np.float64)),
        "lap_max": float(lap.max()),
        "sobel_var": float(sobel.var(dtype=np.float64)),
        "sobel_max": float(sobel.max()),
    }


def block_medians(data: np.ndarray, block: int = _BLOCK) -> np.ndarray:
    """Median of each ``block``×``block`` tile (edges that do not fill a tile are dropped).

    Returns
    -------
    ndarray, shape (ny // block, nx // block)
    """
    ny, nx = (data.shape[0] // block) * block, (data.shape[1] // block) * block
    tiles = data[:ny, :nx].reshape(ny // block, block, nx // block, block).swapaxes(1, 2)
    return np.median(tiles.reshape(ny // block, nx // block, -1), axis=2).astype(np.float32)


def background_features(data: np.ndarray, sigma: float) -> dict[str, float]:
    """Large-scale background shape from 64-px block medians, in units of sky noise.

    Returns
    -------
    dict
        ``bkg_gradient`` (amplitude of the best-fit plane across the frame, σ),
        ``bkg_structure`` (scatter of block medians around that plane, σ),
        ``edge_dark`` (% of border blocks more than 3σ below that plane: obstructions;
        a smooth gradient of twilight or moonlight does not count).
    """
    grid = block_medians(data)
    gy, gx = np.mgrid[0:grid.shape[0], 0:grid.shape[1]]
    design = np.column_stack([np.ones(grid.size), gx.ravel(), gy.ravel()])
    coef, *_ = np.linalg.lstsq(design, grid.ravel().astype(np.float64), rcond=None)
    residual = grid.ravel() - design @ coef
    span = np.hypot(coef[1] * grid.shape[1], coef[2] * grid.shape[0])
    residual_grid = residual.reshape(grid.shape)
    border = np.concatenate([residual_grid[0], residual_grid[-1], residual_grid[1:-1, 0],
                             residual_grid[1:-1, -1]])
    return {
        "bkg_gradient": float(span / sigma),
        "bkg_structure": float(1.4826 * np.median(np.abs(residual)) / sigma),
        "edge_dark": float(np.mean(border < -3 * sigma) * 100.0),
    }


def pattern_noise_features(data: np.ndarray, sky: float, sigma: float) -> dict[str, float]:
    """Row and column pattern noise from clipped row (column) means, in units of sky noise.

    Pixels are clipped to sky ± 5σ so that stars hardly count, and a smooth trend (31-px
    running median) is removed so that sky gradients do not count. Banding, stuck rows or
    columns and readout glitches raise these.

    Returns
    -------
    dict
        ``row_noise, col_noise`` (robust scatter of the profile, σ) and ``row_peak,
        col_peak`` (largest deviation of one row or column, σ).
    """
    clipped = np.clip(data, sky - 5 * sigma, sky + 5 * sigma, dtype=np.float32)

    def scatter(profile: np.ndarray) -> tuple[float, float]:
        residual = profile - ndimage.median_filter(profile, size=31, mode="nearest")
        return (float(1.4826 * np.median(np.abs(residual)) / sigma),
                float(np.abs(residual).max() / sigma))

    row_scatter, row_peak = scatter(clipped.mean(axis=1, dtype=np.float64))
    col_scatter, col_peak = scatter(clipped.mean(axis=0, dtype=np.float64))
    return {"row_noise": row_scatter, "row_peak": row_peak,
            "col_noise": col_scatter, "col_peak": col_peak}


def pixel_noise(data: np.ndarray, row_step: int = 8) -> float:
    """Pixel-to-pixel noise in ADU from differences of neighbouring pixels along rows.

    ``1.4826 MAD / sqrt(2)`` of the differences on every ``row_step``-th row: unlike the
    histogram width, gradients, clouds and vignetting do not inflate it, and stars hardly
    touch the median.
    """
    rows = data[::row_step].astype(np.float32)
    diffs = np.diff(rows, axis=1).ravel()
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(max(1.4826 * mad / np.sqrt(2.0), 0.1))


def frame_features(data: np.ndarray) -> dict[str, float]:
    """All features of one frame (see the functions above for names and units).

    ``noise`` (ADU, :func:`pixel_noise`) is the unit of every feature given "in units of
    sky noise".
    """
    features = histogram_statistics(data)
    noise = features["noise"] = pixel_noise(data)
    features |= focus_features(data, noise)
    features |= background_features(data, noise)
    features |= pattern_noise_features(data, features["median"], noise)
    return features
