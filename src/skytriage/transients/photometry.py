"""Photometry of candidates: aperture flux on the difference, PSF fits on both images.

``flux`` is the aperture flux of the difference (photutils), corrected to total flux with
the encircled energy of the difference's PSF, in science ADU. ``flux_sci`` and ``flux_ref``
(the reference in science ADU) come from linear fits of the image's PSF plus a quadratic
background over a 15x15 cutout, so that a host galaxy's smooth light is not counted; they
give ``delta_mag`` = m_ref - m_sci and decide the ``kind``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from photutils.aperture import CircularAperture, aperture_photometry
from scipy.ndimage import shift as ndi_shift

#: Half-size of the cutouts used by the PSF fits (px).
FIT_HALF = 7
#: A source in the reference counts as present above this S/N of its PSF fit.
PRESENT_SNR = 5.0


def psf_fwhm(psf: np.ndarray) -> float:
    """FWHM of a centred PSF stamp (px), from the area above half the peak."""
    return float(2 * math.sqrt(np.count_nonzero(psf >= 0.5 * psf.max()) / math.pi))


def aperture_radius(psf: np.ndarray) -> float:
    """Aperture radius for the difference: one FWHM, at least 1.5 px."""
    return max(1.5, psf_fwhm(psf))


def encircled_energy(psf: np.ndarray, radius: float) -> float:
    """Fraction of a centred, unit-sum PSF stamp inside a circle of ``radius`` px."""
    c = (psf.shape[0] - 1) / 2
    table = aperture_photometry(psf.astype(np.float64), CircularAperture((c, c), radius),
                                method="exact")
    return float(table["aperture_sum"][0])


def aperture_flux(image: np.ndarray, x: np.ndarray, y: np.ndarray, psf: np.ndarray,
                  noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Total flux (aperture sum / encircled energy) and its background-noise error.

    Parameters
    ----------
    image : numpy.ndarray
        Image with zero background (the difference), ``(ny, nx)``.
    x, y : numpy.ndarray
        Positions (px).
    psf : numpy.ndarray
        The image's PSF, for the radius and the aperture correction.
    noise : float
        Per-pixel noise (same units as ``image``), assumed white.
    """
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    radius = aperture_radius(psf)
    ee = encircled_energy(psf, radius)
    apertures = CircularAperture(np.stack([x, y], 1), radius)
    sums = np.asarray(aperture_photometry(image, apertures, method="exact")["aperture_sum"])
    error = noise * math.sqrt(math.pi * radius**2) / ee
    return sums / ee, np.full(len(x), error)


def _shifted_psf(psf: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The central ``(2 FIT_HALF + 1)^2`` of ``psf`` moved by ``(dx, dy)`` px."""
    c, h = psf.shape[0] // 2, FIT_HALF + 2
    core = psf[c - h:c + h + 1, c - h:c + h + 1].astype(np.float64)
    return ndi_shift(core, (dy, dx), order=3, mode="constant")[2:-2, 2:-2]


def psf_fit_flux(image: np.ndarray, x: np.ndarray, y: np.ndarray, psf: np.ndarray,
                 noise: float, background: str = "quadratic") -> tuple[np.ndarray, np.ndarray]:
    """Flux of a PSF at fixed positions fitted with a smooth background, and its error.

    Parameters
    ----------
    image : numpy.ndarray
        ``(ny, nx)``.
    x, y : numpy.ndarray
        Positions (px).
    psf : numpy.ndarray
        Centred unit-sum PSF stamp.
    noise : float
        Per-pixel background noise (units of ``image``).
    background : {"quadratic", "constant"}
        Background model fitted together with the PSF.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Flux and its 1-sigma error; NaN where the cutout leaves the image.
    """
    ny, nx = image.shape
    yy, xx = np.mgrid[-FIT_HALF:FIT_HALF + 1, -FIT_HALF:FIT_HALF + 1].astype(np.float64)
    terms = [np.ones_like(xx)]
    if background == "quadratic":
        terms += [xx, yy, xx * xx, yy * yy, xx * yy]
    flux, error = np.full(len(x), np.nan), np.full(len(x), np.nan)
    for k, (xk, yk) in enumerate(zip(x, y, strict=True)):
        ix, iy = int(round(xk)), int(round(yk))
        if ix < FIT_HALF or iy < FIT_HALF or ix >= nx - FIT_HALF or iy >= ny - FIT_HALF:
            continue
        model = _shifted_psf(psf, xk - ix, yk - iy)
        design = np.column_stack([model.ravel()] + [t.ravel() for t in terms])
        cut = image[iy - FIT_HALF:iy + FIT_HALF + 1, ix - FIT_HALF:ix + FIT_HALF + 1]
        covariance = np.linalg.pinv(design.T @ design)
        coef = covariance @ (design.T @ cut.ravel().astype(np.float64))
        flux[k] = coef[0]
        error[k] = noise * math.sqrt(covariance[0, 0])
    return flux, error


def sharpness(image: np.ndarray, x: np.ndarray, y: np.ndarray, psf: np.ndarray,
              noise: float) -> np.ndarray:
    """Brightest pixel near each position over the peak a PSF fit predicts there.

    About 1 for a point source seen through ``psf``; well above 1 for cosmic rays and hot
    pixels, which are sharper than any PSF; negative when the fit finds no positive source.
    The image is padded with zeros so that sources at its edge get a value too.
    """
    pad = FIT_HALF + 1
    padded = np.pad(image, pad)
    x, y = np.asarray(x, float) + pad, np.asarray(y, float) + pad
    flux, _ = psf_fit_flux(padded, x, y, psf, noise)
    ix = np.clip(np.rint(x).astype(int), 1, padded.shape[1] - 2)
    iy = np.clip(np.rint(y).astype(int), 1, padded.shape[0] - 2)
    peak = np.array([padded[j - 1:j + 2, i - 1:i + 2].max() for i, j in zip(ix, iy, strict=True)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return peak / (flux * float(psf.max()))


def classify(flux: np.ndarray, flux_ref: np.ndarray, flux_ref_err: np.ndarray) -> np.ndarray:
    """``fading`` when the difference is negative; ``brightening`` when the reference holds a
    point source at S/N >= :data:`PRESENT_SNR`; ``new`` otherwise."""
    present = np.nan_to_num(flux_ref / flux_ref_err, nan=0.0) >= PRESENT_SNR
    return np.where(flux < 0, "fading", np.where(present, "brightening", "new"))


def magnitudes(flux: np.ndarray, flux_ref: np.ndarray, flux_sci: np.ndarray,
               flux_ref_err: np.ndarray, zero_point: float | None) -> pd.DataFrame:
    """``mag_diff`` = ZP - 2.5 log10 |flux| and ``delta_mag`` = m_ref - m_sci.

    ``delta_mag`` needs a significant point source in both images; ``mag_diff`` needs a
    zero point (NaN without). ``delta_mag`` needs no zero point: both fluxes are in
    science ADU.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        both = (np.nan_to_num(flux_ref / flux_ref_err) >= PRESENT_SNR) & (flux_sci > 0)
        delta_mag = np.where(both, -2.5 * np.log10(flux_ref / flux_sci), np.nan)
        if zero_point is None:
            mag_diff = np.full(len(flux), np.nan)
        else:
            mag_diff = np.where(flux != 0, zero_point - 2.5 * np.log10(np.abs(flux)), np.nan)
    return pd.DataFrame({"mag_diff": mag_diff, "delta_mag": delta_mag})


def catalogue_zero_point(sci: np.ndarray, psf: np.ndarray, catalogue: pd.DataFrame,
                         noise: float = 1.0) -> float | None:
    """Zero point from catalogue stars: median of ``mag + 2.5 log10(flux)``.

    Parameters
    ----------
    sci : numpy.ndarray
        Background-subtracted science image (ADU).
    psf : numpy.ndarray
        Its PSF.
    catalogue : pandas.DataFrame
        ``x, y`` (science px) and ``mag``.

    Returns
    -------
    float or None
        None when fewer than 3 stars give a positive flux.
    """
    flux, _ = psf_fit_flux(sci, catalogue["x"].to_numpy(float), catalogue["y"].to_numpy(float),
                           psf, noise, background="constant")
    ok = np.isfinite(flux) & (flux > 0)
    if ok.sum() < 3:
        return None
    return float(np.median(catalogue["mag"].to_numpy(float)[ok] + 2.5 * np.log10(flux[ok])))
