"""Star fields: positions, power-law fluxes, and fast stamp rendering into an image."""

from __future__ import annotations

import math

import numpy as np
from astropy.table import Table
from scipy.signal import fftconvolve

from skytriage.sky.psf import PSF, Streak

#: Most stamp pixels evaluated in one batch (bounds the temporary memory to ~100 MB).
BATCH_PIXELS = 1 << 21

#: Sub-pixel phase steps per pixel of the stamp tables (see :func:`render_stars`).
PHASES = 8


def power_law_fluxes(n: int, rng: np.random.Generator, *, fmin: float = 100.0,
                     fmax: float = 1e6, alpha: float = 2.5) -> np.ndarray:
    """Draw fluxes from ``dN/dF ∝ F^-alpha`` between ``fmin`` and ``fmax``.

    Parameters
    ----------
    n : int
        Number of fluxes.
    rng : numpy.random.Generator
        Source of randomness.
    fmin, fmax : float
        Flux limits (e- per exposure), ``0 < fmin < fmax``.
    alpha : float
        Slope of the differential counts; 2.5 is a uniform (Euclidean) population.

    Returns
    -------
    numpy.ndarray
        float64 fluxes (e-), shape ``(n,)``, by inverse-transform sampling.
    """
    if not 0 < fmin < fmax:
        raise ValueError(f"need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
    u = rng.random(n)
    if math.isclose(alpha, 1.0):
        return fmin * (fmax / fmin) ** u
    k = 1.0 - alpha
    return (fmin**k + u * (fmax**k - fmin**k)) ** (1.0 / k)


def star_field(shape: tuple[int, int], n: int | None, rng: np.random.Generator, *,
               fmin: float = 100.0, fmax: float = 1e6, alpha: float = 2.5,
               margin: float = 0.0,
               positions: tuple[np.ndarray, np.ndarray] | None = None) -> Table:
    """A random star field.

    Parameters
    ----------
    shape : (int, int)
        Frame shape ``(ny, nx)`` (px).
    n : int or None
        Number of stars; ignored (may be None) when ``positions`` is given.
    rng : numpy.random.Generator
        Source of randomness.
    fmin, fmax, alpha : float
        Power-law flux distribution, see :func:`power_law_fluxes` (e- per exposure).
    margin : float
        Extend the uniform positions this many px beyond every edge, so that stars just
        outside the frame spill light into it (and offsets of the pointing stay filled).
    positions : (array, array), optional
        A catalogue's ``(x, y)`` (px) to use instead of uniform positions.

    Returns
    -------
    astropy.table.Table
        Columns ``x, y`` (0-based px, x = column) and ``flux`` (e-), float64.
    """
    if positions is not None:
        x, y = (np.asarray(v, dtype=float) for v in positions)
        n = x.size
    else:
        ny, nx = shape
        x = rng.uniform(-margin - 0.5, nx - 0.5 + margin, n)
        y = rng.uniform(-margin - 0.5, ny - 0.5 + margin, n)
    flux = power_law_fluxes(n, rng, fmin=fmin, fmax=fmax, alpha=alpha)
    table = Table({"x": x, "y": y, "flux": flux})
    table["x"].unit = table["y"].unit = "pix"
    table["flux"].unit = "electron"
    return table


def _radius_classes(radius: np.ndarray) -> np.ndarray:
    """Round radii up to a ladder of sqrt(2) steps (1, 2, 3, 4, 6, 8, 12, 16, ...)."""
    steps = np.ceil(2 * np.log2(np.maximum(radius, 1)))
    return np.ceil(2 ** (steps / 2) - 1e-9).astype(np.int64)


def render_stars(image: np.ndarray, x, y, flux, psf: PSF, *, threshold: float = 0.5,
                 max_radius: int = 64) -> np.ndarray:
    """Add point sources (or streaks) to ``image`` in place through small stamps.

    Parameters
    ----------
    image : numpy.ndarray
        2-D float32 (or float64) image in e-, modified in place.
    x, y : array_like
        Source positions (0-based px, x = column), shape ``(n,)``; may lie off the frame.
    flux : array_like
        Total source fluxes (e-), shape ``(n,)``.
    psf : PSF
        The PSF every source is drawn with.
    threshold : float
        A stamp extends until a pixel would get less than this many e- (its radius comes
        from ``psf.radius(flux, threshold)``), capped at ``max_radius`` px.
    max_radius : int
        Largest stamp half-size (px; for streaks the half-width across the trail).

    Returns
    -------
    numpy.ndarray
        ``image``.

    Notes
    -----
    Sources are grouped by stamp radius (a ladder of sqrt(2) steps); each group is built as
    one ``(n, K)`` array of pixel values in batches of at most :data:`BATCH_PIXELS` and
    scatter-added with ``np.add.at`` on flat indices. Every stamp is normalised to sum 1
    over its footprint before it is cut at the frame edges, so light falling off the frame
    is lost, as on a detector.

    A group of more than ``(PHASES + 1)^2`` sources does not evaluate the PSF per source:
    it evaluates normalised stamps once on a grid of sub-pixel phases (steps of
    ``1 / PHASES`` px) and interpolates each source's stamp bilinearly between the four
    nearest phases. The interpolated stamp keeps the exact flux and flux-weighted centroid
    and is wider by at most ``1 / (4 PHASES^2)`` px^2 in variance.
    """
    ny, nx = image.shape
    x, y, flux = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, y, flux))
    ix = np.floor(x + 0.5).astype(np.int64)
    iy = np.floor(y + 0.5).astype(np.int64)
    radius = _radius_classes(np.minimum(psf.radius(flux, threshold), max_radius))
    flat = image.reshape(-1)
    for r in np.unique(radius):
        oy, ox = psf.footprint(int(r))
        reach_x, reach_y = int(np.abs(ox).max()), int(np.abs(oy).max())
        picked = np.flatnonzero((radius == r) & (ix >= -reach_x) & (ix < nx + reach_x)
                                & (iy >= -reach_y) & (iy < ny + reach_y))
        table = _phase_table(psf, oy, ox) if picked.size > (PHASES + 1) ** 2 else None
        step = max(1, BATCH_PIXELS // oy.size)
        for start in range(0, picked.size, step):
            sel = picked[start:start + step]
            fx, fy = x[sel] - ix[sel], y[sel] - iy[sel]
            if table is None:
                values = _evaluate_stamps(psf, oy, ox, fx, fy)
            else:
                values = _interpolate_stamps(table, fx, fy)
            values *= flux[sel].astype(np.float32)[:, None]
            _scatter_add(flat, (ny, nx), ix[sel], iy[sel], oy, ox, values)
    return image


def _evaluate_stamps(psf: PSF, oy: np.ndarray, ox: np.ndarray, fx: np.ndarray,
                     fy: np.ndarray) -> np.ndarray:
    """Normalised stamps ``(n, K)`` for sources at sub-pixel offsets ``fx, fy`` (px)."""
    values = psf.evaluate(ox[None, :] - fx[:, None].astype(np.float32),
                          oy[None, :] - fy[:, None].astype(np.float32))
    total = values.sum(axis=1, dtype=np.float64)
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    values *= scale.astype(np.float32)[:, None]
    return values


def _phase_table(psf: PSF, oy: np.ndarray, ox: np.ndarray) -> np.ndarray:
    """Normalised stamps at phases ``-0.5 + i / PHASES``: shape ``(P + 1, P + 1, K)``."""
    phase = np.arange(PHASES + 1) / PHASES - 0.5
    fy, fx = (g.ravel() for g in np.meshgrid(phase, phase, indexing="ij"))
    return _evaluate_stamps(psf, oy, ox, fx, fy).reshape(PHASES + 1, PHASES + 1, -1)


def _interpolate_stamps(table: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``table`` at phases ``fx, fy`` (px, -0.5..0.5): ``(n, K)``."""
    gx, gy = (np.clip(f + 0.5, 0, 1) * PHASES for f in (fx, fy))
    i = np.minimum(gx.astype(np.int64), PHASES - 1)
    j = np.minimum(gy.astype(np.int64), PHASES - 1)
    wx = (gx - i).astype(np.float32)[:, None]
    wy = (gy - j).astype(np.float32)[:, None]
    low = table[j, i] + (table[j, i + 1] - table[j, i]) * wx
    high = table[j + 1, i] + (table[j + 1, i + 1] - table[j + 1, i]) * wx
    return low + (high - low) * wy


def _scatter_add(flat: np.ndarray, shape: tuple[int, int], ix: np.ndarray, iy: np.ndarray,
                 oy: np.ndarray, ox: np.ndarray, values: np.ndarray) -> None:
    """Add stamps ``values`` ``(n, K)`` at pixels ``(iy + oy, ix + ox)`` that lie on the frame."""
    ny, nx = shape
    px = ix[:, None] + ox[None, :]
    py = iy[:, None] + oy[None, :]
    inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    np.add.at(flat, (py * nx + px)[inside], values[inside].astype(flat.dtype, copy=False))


def motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Smear a whole image along a line, as when the telescope moves during an exposure.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (e-).
    length : float
        Length of the motion (px, >= 1).
    angle : float
        Direction of the motion (degrees from +x towards +y).

    Returns
    -------
    numpy.ndarray
        float32 image of the same shape: ``image`` convolved (FFT, zero padding) with a
        unit-sum line segment centred on the origin, rasterised as a :class:`Streak` of
        0.5 px FWHM. Light moved off the frame is lost; the cost does not depend on how
        many stars the image holds.
    """
    kernel_psf = Streak(length, angle, 0.5)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    half_x = int(np.ceil(0.5 * length * abs(c))) + 3
    half_y = int(np.ceil(0.5 * length * abs(s))) + 3
    yy, xx = np.mgrid[-half_y:half_y + 1, -half_x:half_x + 1].astype(np.float32)
    kernel = kernel_psf.evaluate(xx, yy)
    kernel /= kernel.sum()
    return fftconvolve(image.astype(np.float32, copy=False), kernel, mode="same")
