"""Faint stars a first detector flagged, given back by a point-source test.

A mask network has to tell a faint undersampled star from a cosmic-ray spot by shape
alone, and now and then flags the star's core. Once the image's profile is known
(:mod:`skytriage.crmask.stars`), every small flagged feature can be asked which it is:
on a stamp around its peak, the profile (at the best sub-pixel centre, with a free flux
and a flat background) is compared with a cosmic-ray spot (a pixel-integrated Gaussian of
:data:`SPOT_SIGMAS` px, the charge diffusion of a single hit). Where the profile fits
about as well as the spot or better, and fits within the noise, the feature is a star:
its pixels are given back, except those still :data:`KEEP_SIGMA` above the fitted star
(a hit on the star). Features fainter than :data:`MIN_PEAK_SIGMA` are left as flagged:
the two shapes are too alike there to overrule the detector.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from skytriage.crmask.detect import NoiseModel

if TYPE_CHECKING:
    from skytriage.crmask.stars import GridPSF

HALF = 3
"""Half-size (px) of the stamp both shapes are fitted on."""
MAX_AREA = 16
"""Flagged features larger than this (px) are tracks, not star cores."""
MIN_PEAK_SIGMA = 6.0
"""Only features whose peak exceeds this many background rms are tested."""
SPOT_SIGMAS = (0.25, 0.4, 0.6)
"""Gaussian widths (px) of the cosmic-ray spot shapes."""
OFFSETS = np.linspace(-0.5, 0.5, 9)
"""Sub-pixel centres (px from the peak pixel, each axis) tried for either shape."""
PREFERENCE = 5.0
"""The star is chosen unless the spot fits better by more than this in chi²."""
FIT_SIGMA = 3.0
"""The star must fit within ``dof + FIT_SIGMA * sqrt(2 dof)`` in chi²."""
KEEP_SIGMA = 3.0
"""Pixels this far above the fitted star stay flagged."""


def point_source_pixels(image: np.ndarray, noise: NoiseModel, flagged: np.ndarray,
                        ignore: np.ndarray, psf: GridPSF) -> np.ndarray:
    """Flagged pixels that belong to a faint star rather than a cosmic ray.

    Parameters
    ----------
    image : numpy.ndarray
        float32 ADU ``(ny, nx)``, finite.
    noise : NoiseModel
        Background and per-pixel noise.
    flagged : numpy.ndarray
        bool ``(ny, nx)``: a first detector's cosmic rays.
    ignore : numpy.ndarray
        bool ``(ny, nx)``: saturated and bad pixels; features within 3 px are not tested.
    psf : skytriage.crmask.stars.GridPSF
        The image's profile.

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``: pixels of ``flagged`` to give back.
    """
    labels, n = ndimage.label(flagged, np.ones((3, 3), bool))
    back = np.zeros(flagged.shape, bool)
    if n == 0:
        return back
    peaks, area, peak_level = _feature_peaks(image, noise, labels)
    tested = np.flatnonzero(_testable(peaks, area, peak_level, labels.shape, noise, ignore))
    if tested.size == 0:
        return back
    k = np.arange(-HALF, HALF + 1)
    yy, xx = (a.reshape(tested.size, -1) for a in np.broadcast_arrays(
        peaks[tested, 0, None, None] + k[:, None], peaks[tested, 1, None, None] + k[None, :]))
    data = image[yy, xx].astype(np.float64)
    weight = 1.0 / noise.sigma[yy, xx].astype(np.float64) ** 2
    star_chi2, star_flux, star_model = _best_fit(data, weight, _star_shapes(psf))
    spot_chi2, _, _ = _best_fit(data, weight, _spot_shapes())
    dof = data.shape[1] - 4
    star = ((star_chi2 < spot_chi2 + PREFERENCE) & (star_flux > 0)
            & (star_chi2 < dof + FIT_SIGMA * np.sqrt(2 * dof)))
    excess = (data - star_model) * np.sqrt(weight)
    own = labels[yy, xx] == (tested + 1)[:, None]
    give = own & star[:, None] & (excess < KEEP_SIGMA)
    back[yy[give], xx[give]] = True
    return back


def _feature_peaks(image: np.ndarray, noise: NoiseModel, labels: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per flagged feature (labels 1..n): its brightest pixel ``(n, 2)`` (y, x), its area
    (px) and its peak above the background (ADU); read at the flagged pixels only."""
    ys, xs = np.nonzero(labels)
    label = labels[ys, xs]
    level = image[ys, xs] - noise.background[ys, xs]
    order = np.lexsort((-level, label))  # by feature, brightest first
    first = order[np.r_[True, label[order][1:] != label[order][:-1]]]
    return (np.column_stack([ys[first], xs[first]]), np.bincount(label)[1:],
            level[first])


def _testable(peaks: np.ndarray, area: np.ndarray, peak_level: np.ndarray,
              shape: tuple[int, int], noise: NoiseModel, ignore: np.ndarray) -> np.ndarray:
    """Which features ``(n,)`` are small, bright enough, inside and away from ``ignore``."""
    ny, nx = shape
    py, px = peaks[:, 0], peaks[:, 1]
    inside = (py >= HALF) & (py < ny - HALF) & (px >= HALF) & (px < nx - HALF)
    near_ignored = ndimage.binary_dilation(ignore, iterations=3)[py, px]
    bright = peak_level > MIN_PEAK_SIGMA * noise.background_rms[py, px]
    return (area <= MAX_AREA) & inside & ~near_ignored & bright


def _best_fit(data: np.ndarray, weight: np.ndarray, shapes: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of ``flux * shape + background`` for every stamp and shape.

    Parameters
    ----------
    data, weight : numpy.ndarray
        ``(n, K)`` stamp pixels (ADU) and inverse variances.
    shapes : numpy.ndarray
        ``(m, K)`` unit-flux shapes.

    Returns
    -------
    chi2, flux, model : numpy.ndarray
        The best shape's chi² and flux ``(n,)``, and its model ``(n, K)``.
    """
    s0 = weight.sum(axis=1)[:, None]
    s1 = weight @ shapes.T
    s2 = weight @ (shapes**2).T
    d0 = (weight * data).sum(axis=1)[:, None]
    d1 = (weight * data) @ shapes.T
    dd = (weight * data * data).sum(axis=1)[:, None]
    det = s0 * s2 - s1**2
    flux = (s0 * d1 - s1 * d0) / det
    sky = (s2 * d0 - s1 * d1) / det
    chi2 = dd - flux * d1 - sky * d0
    best = chi2.argmin(axis=1)
    rows = np.arange(data.shape[0])
    model = flux[rows, best, None] * shapes[best] + sky[rows, best, None]
    return chi2[rows, best], flux[rows, best], model


def _star_shapes(psf: GridPSF) -> np.ndarray:
    """The profile on the stamp at every sub-pixel centre, ``(len(OFFSETS)², K)``."""
    k = np.arange(-HALF, HALF + 1, dtype=float)
    oy, ox = np.meshgrid(OFFSETS, OFFSETS, indexing="ij")
    dy = k[None, :, None] - oy.ravel()[:, None, None]
    dx = k[None, None, :] - ox.ravel()[:, None, None]
    dy, dx = np.broadcast_arrays(dy, dx)
    return psf.evaluate(dx, dy, derivatives=False)[0].reshape(oy.size, -1)


def _spot_shapes(samples: int = 5) -> np.ndarray:
    """Pixel-integrated Gaussian spots of every :data:`SPOT_SIGMAS` width at every centre,
    ``(len(SPOT_SIGMAS) * len(OFFSETS)², K)``, each summing to 1 on the stamp."""
    k = np.arange(-HALF, HALF + 1, dtype=float)
    sub = (np.arange(samples) + 0.5) / samples - 0.5
    oy, ox = np.meshgrid(OFFSETS, OFFSETS, indexing="ij")
    y = (k[:, None] + sub[None, :])[None, :, :] - oy.ravel()[:, None, None]
    x = (k[:, None] + sub[None, :])[None, :, :] - ox.ravel()[:, None, None]
    shapes = []
    for sigma in SPOT_SIGMAS:
        gy = np.exp(-0.5 * (y / sigma) ** 2).mean(axis=2)
        gx = np.exp(-0.5 * (x / sigma) ** 2).mean(axis=2)
        spot = gy[:, :, None] * gx[:, None, :]
        shapes.append((spot / spot.sum(axis=(1, 2), keepdims=True)).reshape(oy.size, -1))
    return np.concatenate(shapes)
