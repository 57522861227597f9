"""Difference imaging: background, stars, PSFs measured from the images, ZOGY subtraction.

:func:`zogy` is the proper image subtraction of Zackay, Ofek & Gal-Yam (2016, ApJ 830, 27)
with numpy/scipy FFTs: the difference ``D`` (white noise of unit variance), its PSF ``P_D``,
and the detection statistic ``S_corr`` (per-pixel S/N of a point source, corrected for the
photon noise of the sources). :func:`gaussian_kernel_difference` is the classical
alternative (Alard & Lupton 1998: the sharper image convolved with a kernel built from
Gaussian basis functions), kept to measure the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
import sep
from scipy.ndimage import fourier_shift
from scipy.signal import oaconvolve
from scipy.spatial import cKDTree

from skytriage.errors import SkytriageInputError

#: Side of the PSF stamps measured from the images (px, odd).
PSF_SIZE = 31
#: Radius (px) within which each star stamp is normalised and the PSF kept pixel by pixel;
#: beyond it the PSF is azimuthally averaged.
WING_RADIUS = 5.0
#: Padding around the images before the FFTs, against wrap-around (px).
FFT_PAD = 32


@dataclass
class Background:
    """Sky of one image: ``level`` map (ADU) and the global noise ``rms`` (ADU)."""

    level: np.ndarray
    rms: float


def measure_background(image: np.ndarray, mask: np.ndarray | None = None) -> Background:
    """Sky level on 64-px boxes (sep) and its global rms, masked pixels ignored."""
    bkg = sep.Background(np.ascontiguousarray(image, dtype=np.float32), mask=mask, bw=64,
                         bh=64, fw=3, fh=3)
    return Background(bkg.back().astype(np.float32), float(bkg.globalrms))


def find_stars(image: np.ndarray, rms: float, mask: np.ndarray | None = None,
               threshold: float = 10.0, max_stars: int = 2000) -> np.ndarray:
    """Bright star-like sources of a background-subtracted image, brightest first.

    Sharp sources (peak above 30 % of the flux: cosmic rays, hot pixels) and elongated ones
    (tracks) are left out.

    Returns
    -------
    numpy.ndarray
        Structured array from ``sep.extract`` (``x, y, flux, peak, flag``, ...), at most
        ``max_stars`` rows.
    """
    sep.set_extract_pixstack(5_000_000)
    sep.set_sub_object_limit(4096)
    objects = sep.extract(np.ascontiguousarray(image, dtype=np.float32), threshold, err=rms,
                          mask=mask, minarea=5, deblend_cont=0.005)
    with np.errstate(divide="ignore", invalid="ignore"):
        star_like = ((objects["peak"] < 0.3 * objects["flux"]) | (objects["flag"] != 0)) & (
            objects["a"] < 1.6 * objects["b"])
    objects = objects[star_like]
    order = np.argsort(objects["flux"])[::-1]
    return objects[order[:max_stars]]


def measure_psf(image: np.ndarray, stars: np.ndarray, saturation: float, path: str,
                size: int = PSF_SIZE, max_used: int = 150) -> np.ndarray:
    """The PSF as the weighted mean of bright, isolated, unsaturated stars, centred, sum 1.

    Parameters
    ----------
    image : numpy.ndarray
        Background-subtracted image (ADU).
    stars : numpy.ndarray
        :func:`find_stars` output.
    saturation : float
        Level above which a star is not used (ADU above the background).
    path : str
        The file, named when too few stars qualify.
    size, max_used : int
        Stamp side (px, odd) and most stars stacked.

    Returns
    -------
    numpy.ndarray
        float32 ``(size, size)`` stamp, sum 1, centred on the middle pixel.
    """
    half = size // 2
    ny, nx = image.shape
    xy = np.stack([stars["x"], stars["y"]], 1)
    neighbours = cKDTree(xy).query(xy, k=2)[0][:, 1] if len(xy) > 1 else np.full(len(xy), 1e9)
    ok = ((stars["peak"] < 0.5 * saturation) & (stars["flag"] == 0) & (neighbours > half)
          & (stars["x"] > half + 2) & (stars["x"] < nx - half - 3)
          & (stars["y"] > half + 2) & (stars["y"] < ny - half - 3))
    chosen = stars[ok]
    # galaxies pass every cut above but are less concentrated than the PSF
    concentration = chosen["peak"] / chosen["flux"]
    if len(chosen) >= 5:
        chosen = chosen[concentration > 0.6 * np.median(concentration)]
    chosen = chosen[:max_used]
    if len(chosen) < 3:
        raise SkytriageInputError(path, f"only {len(chosen)} isolated unsaturated stars to "
                                        "measure the PSF (saturated or empty image?)")
    xc, yc, _ = sep.winpos(np.ascontiguousarray(image, dtype=np.float32), chosen["x"],
                           chosen["y"], np.full(len(chosen), 1.2))
    radius = np.hypot(*np.mgrid[-half:half + 1, -half:half + 1])
    ring, outer = radius > half - 2, radius > WING_RADIUS
    stamps, fluxes = [], []
    for x, y in zip(xc, yc, strict=True):
        ix, iy = int(round(x)), int(round(y))
        cut = image[iy - half - 1:iy + half + 2, ix - half - 1:ix + half + 2].astype(np.float64)
        moved = _fourier_shift(cut, iy - y, ix - x)[1:-1, 1:-1]
        moved -= np.median(moved[ring])  # local sky: the global map is raised near stars
        moved[ring] = 0.0
        inner = moved[~outer].sum()  # less noisy than the whole stamp's sum
        if inner > 0:
            stamps.append(moved / inner)
            fluxes.append(inner)
    return _stack(np.array(stamps), np.array(fluxes)).astype(np.float32)


def _stack(stamps: np.ndarray, fluxes: np.ndarray) -> np.ndarray:
    """Weighted mean of unit-sum stamps ``(n, size, size)``; sum 1.

    Stamps whose light within 2 px of the centre differs by more than 15 % from the 80th
    percentile of the 15 brightest are blends or galaxies and are left out; pixels farther than 5
    robust sigma from the median (neighbours, cosmic rays) too. Weights grow as flux² (optimal for
    background-limited stars) up to the 5th brightest star, so that no single star rules.
    Measured: an equal-weight median let the noise of the faint stars through (encircled
    energy within 3 px 5 % off on a 1024² image); uncapped weights let one bright galaxy in.
    """
    half = stamps.shape[1] // 2
    core = np.hypot(*np.mgrid[-half:half + 1, -half:half + 1]) <= 2
    light = stamps[:, core].sum(1)
    # the PSF is the most compact bright source: galaxies can outnumber the stars among
    # the brightest (faint stamps are noisy)
    typical = np.percentile(light[np.argsort(fluxes)[::-1][:15]], 80)
    good = np.abs(light / typical - 1) < 0.15
    if good.sum() >= 3:
        stamps, fluxes = stamps[good], fluxes[good]
    cap = np.sort(fluxes)[::-1][min(4, len(fluxes) - 1)]
    median = np.median(stamps, axis=0)
    spread = 1.4826 * np.median(np.abs(stamps - median), axis=0) + 1e-12
    weights = ((np.abs(stamps - median) < 5 * spread)
               * (np.minimum(fluxes, cap) ** 2)[:, None, None])
    psf = (weights * stamps).sum(0) / np.maximum(weights.sum(0), 1e-30)
    return _smooth_wings(psf)


def _smooth_wings(psf: np.ndarray) -> np.ndarray:
    """Beyond :data:`WING_RADIUS` px, the azimuthal mean in 1-px rings (the wings hold a few
    % of the light spread over hundreds of noisy pixels); sum 1."""
    half = psf.shape[0] // 2
    radius = np.hypot(*np.mgrid[-half:half + 1, -half:half + 1])
    rings = np.rint(radius).astype(int)
    profile = np.bincount(rings.ravel(), psf.ravel()) / np.bincount(rings.ravel())
    out = np.where(radius > WING_RADIUS, profile[rings], psf)
    return out / out.sum()


def _fourier_shift(stamp: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``stamp`` moved by ``(dy, dx)`` px with a Fourier phase ramp (sinc interpolation: it
    does not widen a Nyquist-sampled PSF as spline interpolation does)."""
    spectrum = fourier_shift(np.fft.fft2(stamp), (dy, dx))
    return np.fft.ifft2(spectrum).real


@dataclass
class ZogyResult:
    """Proper image subtraction of a science image ``N`` and a reference ``R``.

    Attributes
    ----------
    diff : numpy.ndarray
        The difference ``D`` scaled to science ADU: a point source of science flux ``f``
        sums to ``f``; float32 ``(ny, nx)``.
    diff_noise : float
        Per-pixel noise of ``diff`` (science ADU; ``D`` has white noise).
    psf : numpy.ndarray
        ``P_D``, the PSF of ``diff`` (sum 1, ``(PSF_SIZE, PSF_SIZE)``).
    score : numpy.ndarray
        ``S_corr``: S/N of a point source at each pixel (positive: brighter in the science).
    flux_ratio : float
        Science ADU per reference ADU of the same source (``F_n / F_r``).
    """

    diff: np.ndarray
    diff_noise: float
    psf: np.ndarray
    score: np.ndarray
    flux_ratio: float


def _embed(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A centred stamp placed in an array of ``shape`` with its centre on pixel (0, 0)."""
    out = np.zeros(shape, np.float32)
    h = psf.shape[0] // 2
    out[:psf.shape[0], :psf.shape[1]] = psf
    return np.roll(out, (-h, -h), axis=(0, 1))


def _crop_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Central ``(size, size)`` part of a kernel whose centre sits on pixel (0, 0)."""
    offsets = np.arange(size) - size // 2
    return kernel[np.ix_(offsets % kernel.shape[0], offsets % kernel.shape[1])]


def zogy(new: np.ndarray, ref: np.ndarray, psf_new: np.ndarray, psf_ref: np.ndarray,
         noise_new: float, noise_ref: float, flux_ratio: float, gain_new: float,
         gain_ref: float) -> ZogyResult:
    """ZOGY proper subtraction (Zackay, Ofek & Gal-Yam 2016, eqs. 13-17, 25-28).

    Parameters
    ----------
    new, ref : numpy.ndarray
        Background-subtracted science and aligned reference (ADU), same shape, 0 where
        masked.
    psf_new, psf_ref : numpy.ndarray
        Their PSFs (centred, sum 1, same odd size).
    noise_new, noise_ref : float
        Background noise per pixel (ADU).
    flux_ratio : float
        ``F_n / F_r``: science ADU per reference ADU of the same source.
    gain_new, gain_ref : float
        e-/ADU, for the photon noise of the sources in ``S_corr``.
    """
    ny, nx = new.shape
    shape = (sfft.next_fast_len(ny + 2 * FFT_PAD, real=True),
             sfft.next_fast_len(nx + 2 * FFT_PAD, real=True))
    fr, fn = 1.0, float(flux_ratio)
    sn, sr = float(noise_new), float(noise_ref)
    pn_hat = sfft.rfft2(_embed(psf_new, shape))
    pr_hat = sfft.rfft2(_embed(psf_ref, shape))
    denom2 = sn**2 * fr**2 * np.abs(pr_hat) ** 2 + sr**2 * fn**2 * np.abs(pn_hat) ** 2
    denom = np.sqrt(denom2) + np.float32(1e-12)
    f_d = fr * fn / np.sqrt(sn**2 * fr**2 + sr**2 * fn**2)
    n_hat = sfft.rfft2(_pad(new, shape), workers=-1)
    r_hat = sfft.rfft2(_pad(ref, shape), workers=-1)
    d_hat = (fr * pr_hat * n_hat - fn * pn_hat * r_hat) / denom
    del n_hat, r_hat
    pd_hat = fr * fn * pr_hat * pn_hat / (f_d * denom)
    d = sfft.irfft2(d_hat, shape, workers=-1)[FFT_PAD:FFT_PAD + ny, FFT_PAD:FFT_PAD + nx]
    s = sfft.irfft2(f_d * d_hat * np.conj(pd_hat), shape, workers=-1)
    s = s[FFT_PAD:FFT_PAD + ny, FFT_PAD:FFT_PAD + nx]
    del d_hat
    size = psf_new.shape[0]
    kn = sfft.irfft2(fn * fr**2 * np.conj(pn_hat) * np.abs(pr_hat) ** 2 / denom**2, shape)
    kr = sfft.irfft2(fr * fn**2 * np.conj(pr_hat) * np.abs(pn_hat) ** 2 / denom**2, shape)
    psf_d = _crop_kernel(sfft.irfft2(pd_hat, shape), size)
    # photon noise of the sources: V(S_N) = V_N * kn^2, V(S_R) = V_R * kr^2 (eq. 26-27)
    source_hat = (sfft.rfft2(_pad(np.clip(new, 0, None) / gain_new, shape), workers=-1)
                  * sfft.rfft2(kn**2, workers=-1)
                  + sfft.rfft2(_pad(np.clip(ref, 0, None) / gain_ref, shape), workers=-1)
                  * sfft.rfft2(kr**2, workers=-1))
    source = sfft.irfft2(source_hat, shape, workers=-1)[FFT_PAD:FFT_PAD + ny,
                                                        FFT_PAD:FFT_PAD + nx]
    variance = sn**2 * np.sum(kn**2) + sr**2 * np.sum(kr**2) + source
    score = (s / np.sqrt(np.clip(variance, 1e-12, None))).astype(np.float32)
    scale = fn / f_d
    return ZogyResult(diff=(d * scale).astype(np.float32), diff_noise=float(scale),
                      psf=(psf_d / psf_d.sum()).astype(np.float32), score=score,
                      flux_ratio=fn)


def _pad(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    out[FFT_PAD:FFT_PAD + image.shape[0], FFT_PAD:FFT_PAD + image.shape[1]] = image
    return out


def _gaussian_basis(size: int) -> list[np.ndarray]:
    """Alard-Lupton basis: Gaussians (sigma 0.7, 1.5, 3 px) times polynomials (deg 4, 3, 2)."""
    h = size // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1].astype(np.float64)
    basis = []
    for sigma, degree in ((0.7, 4), (1.5, 3), (3.0, 2)):
        gauss = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        for i in range(degree + 1):
            for j in range(degree + 1 - i):
                basis.append(gauss * xx**i * yy**j)
    return basis


def gaussian_kernel_difference(new: np.ndarray, ref: np.ndarray, psf_new: np.ndarray,
                               psf_ref: np.ndarray, flux_ratio: float, noise_new: float,
                               noise_ref: float, size: int = 21) -> ZogyResult:
    """Classical subtraction: ``N - F (R * K)`` with ``K`` fitted so that ``P_r * K = P_n``.

    The kernel is a least-squares sum of the Alard-Lupton Gaussian basis fitted on the
    measured PSFs; the detection statistic is the difference filtered with ``P_n``
    divided by its noise (a matched filter, no source-noise term). Returned in a
    :class:`ZogyResult` so that both methods feed the same candidate extraction; its
    ``diff_noise`` is the white-noise estimate, its score normalised by its robust spread.
    """
    basis = _gaussian_basis(size)
    columns = [oaconvolve(psf_ref.astype(np.float64), b, mode="same").ravel() for b in basis]
    coef, *_ = np.linalg.lstsq(np.column_stack(columns), psf_new.astype(np.float64).ravel(),
                               rcond=None)
    kernel = sum(c * b for c, b in zip(coef, basis, strict=True))
    kernel /= kernel.sum()
    diff = new - flux_ratio * oaconvolve(ref, kernel.astype(np.float32), mode="same")
    noise = float(np.sqrt(noise_new**2 + (flux_ratio * noise_ref) ** 2 * np.sum(kernel**2)))
    filtered = oaconvolve(diff, psf_new[::-1, ::-1], mode="same")
    # the kernel correlates the noise: normalise the matched filter by its measured spread
    spread = 1.4826 * np.median(np.abs(filtered[::4, ::4] - np.median(filtered[::4, ::4])))
    score = filtered / spread
    return ZogyResult(diff=diff.astype(np.float32), diff_noise=noise, psf=psf_new,
                      score=score.astype(np.float32), flux_ratio=flux_ratio)
