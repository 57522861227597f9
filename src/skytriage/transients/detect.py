"""The classical detector: read, align, subtract (ZOGY), extract candidates from ``S_corr``.

No training needed: :func:`prepare_pair` gives the aligned, background-subtracted images,
their masks and the difference; :func:`find_candidates` finds peaks of ``|S_corr|`` above a
threshold. The CNN (:mod:`skytriage.transients.model`) then scores these candidates.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd
import sep
from astropy.io import fits
from scipy.spatial import cKDTree

from skytriage.errors import SkytriageInputError
from skytriage.io import read_frame
from skytriage.transients.align import Alignment, align, warp_to
from skytriage.transients.subtract import (
    ZogyResult,
    find_stars,
    gaussian_kernel_difference,
    measure_background,
    measure_psf,
    zogy,
)

#: Header keywords that may hold a photometric zero point (mag of 1 ADU), in this order.
ZERO_POINT_KEYS = ("MAGZP", "ZP", "MAGZERO", "ZEROPT", "PHOTZP", "ZPMAG")
#: Detection threshold on |S_corr| (sigma).
DETECTION_THRESHOLD = 5.0
#: Detection threshold (sigma per pixel) of the stars used to align and to measure the PSF.
ALIGN_THRESHOLD = 5.0
#: Most of an image that may be saturated before the image is refused.
MAX_SATURATED_FRACTION = 0.5
#: Dilation of saturated pixels (px) before they are masked.
SATURATION_GROW = 4


@dataclass
class PreparedPair:
    """A pair on one grid, ready for candidates and photometry.

    Attributes
    ----------
    sci, ref : numpy.ndarray
        Background-subtracted science image and aligned reference (ADU of each), float32
        ``(ny, nx)``, 0 where masked.
    noise_sci, noise_ref : float
        Background noise per pixel (ADU of each image).
    psf_sci, psf_ref : numpy.ndarray
        Measured PSFs (sum 1).
    mask : numpy.ndarray
        bool ``(ny, nx)``: pixels not usable (outside the reference, saturated).
    saturated : numpy.ndarray
        bool ``(ny, nx)``: the saturated part of ``mask`` (either image, dilated).
    ref_native : numpy.ndarray
        Background-subtracted reference on its own grid (ADU), float32; ``alignment``
        maps science pixels onto it.
    subtraction : ZogyResult
        Difference, its PSF, noise and ``S_corr``.
    alignment : Alignment
    zero_point : float or None
        Science zero point (mag of 1 science ADU), or None.
    zero_point_source : str
        Where it came from: a header keyword, ``reference header``, ``catalogue``, ``none``.
    gain_sci, gain_ref : float
        e-/ADU.
    timings : dict
        Seconds per step.
    """

    sci: np.ndarray
    ref: np.ndarray
    noise_sci: float
    noise_ref: float
    psf_sci: np.ndarray
    psf_ref: np.ndarray
    mask: np.ndarray
    saturated: np.ndarray
    ref_native: np.ndarray
    subtraction: ZogyResult
    alignment: Alignment
    zero_point: float | None
    zero_point_source: str
    gain_sci: float
    gain_ref: float
    timings: dict = field(default_factory=dict)


def header_zero_point(header: fits.Header) -> tuple[float | None, str]:
    """The zero point in a header and its keyword, or ``(None, "")``."""
    for key in ZERO_POINT_KEYS:
        value = header.get(key)
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return float(value), key
    return None, ""


def saturation_level(data: np.ndarray, header: fits.Header) -> float:
    """SATURATE from the header, else the image maximum when many pixels sit there, else inf."""
    value = header.get("SATURATE")
    if isinstance(value, int | float) and value > 0:
        return float(value)
    top = float(data.max())
    return top if np.count_nonzero(data >= top) > 20 else math.inf


def _saturated(data: np.ndarray, level: float, path: str) -> np.ndarray:
    """Dilated map of saturated pixels; refuse an image that is mostly saturated."""
    hit = data >= 0.98 * level if math.isfinite(level) else np.zeros(data.shape, bool)
    fraction = float(hit.mean())
    if fraction > MAX_SATURATED_FRACTION:
        raise SkytriageInputError(path, f"saturated: {100 * fraction:.0f}% of the pixels are at "
                                        f"the saturation level ({level:g} ADU)")
    size = 2 * SATURATION_GROW + 1
    grown = cv2.dilate(hit.astype(np.uint8), np.ones((size, size), np.uint8))
    return grown.astype(bool)


@contextmanager
def _timed(timings: dict, name: str) -> Iterator[None]:
    """Add the seconds spent in the block to ``timings[name]``."""
    t0 = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def _common_stars(sci_stars: np.ndarray, ref_stars: np.ndarray, radius: float = 1.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sources found at the same place (within ``radius`` px) in both aligned images: stars,
    not cosmic rays or hot pixels. Returns both rows, in the science order."""
    if len(sci_stars) == 0 or len(ref_stars) == 0:
        return sci_stars[:0], ref_stars[:0]
    tree = cKDTree(np.stack([ref_stars["x"], ref_stars["y"]], 1))
    dist, index = tree.query(np.stack([sci_stars["x"], sci_stars["y"]], 1),
                             distance_upper_bound=radius)
    ok = np.isfinite(dist)
    return sci_stars[ok], ref_stars[index[ok]]


def _flux_ratio(sci: np.ndarray, ref: np.ndarray, stars: np.ndarray, mask: np.ndarray,
                psf_sci: np.ndarray, psf_ref: np.ndarray, noise_sci: float) -> float:
    """Science ADU per reference ADU: median ratio of aperture fluxes of bright stars,
    each corrected by its image's encircled energy within the aperture."""
    radius = 6.0
    ok = (stars["flux"] > 100 * noise_sci) & (stars["flag"] == 0)
    x, y = stars["x"][ok], stars["y"][ok]
    inside = ~mask[np.clip(np.rint(y).astype(int), 0, mask.shape[0] - 1),
                   np.clip(np.rint(x).astype(int), 0, mask.shape[1] - 1)]
    x, y = x[inside][:300], y[inside][:300]
    if x.size < 3:
        return 1.0
    fs, _, fs_flag = sep.sum_circle(sci, x, y, radius)
    fr, _, fr_flag = sep.sum_circle(ref, x, y, radius)
    good = (fr > 0) & (fs > 0) & (fs_flag == 0) & (fr_flag == 0)
    if good.sum() < 3:
        return 1.0
    ee = _encircled(psf_sci, radius) / _encircled(psf_ref, radius)
    return float(np.median(fs[good] / fr[good]) / ee)


def _encircled(psf: np.ndarray, radius: float) -> float:
    """Fraction of a centred PSF stamp within ``radius`` px."""
    c = psf.shape[0] // 2
    total, _, _ = sep.sum_circle(np.ascontiguousarray(psf, dtype=np.float32), [c], [c], radius,
                                 subpix=5)
    return float(total[0])


def prepare_pair(ref_path: str | os.PathLike, sci_path: str | os.PathLike, *,
                 method: str = "zogy", catalogue: pd.DataFrame | None = None) -> PreparedPair:
    """Read, align and subtract one pair of FITS files (see :func:`prepare_images`).

    Raises
    ------
    SkytriageInputError
        Unreadable file, no overlap, unmatched stars, saturated image, too few stars.
    """
    timings: dict[str, float] = {}
    ref_path, sci_path = os.fspath(ref_path), os.fspath(sci_path)
    with _timed(timings, "read_s"):
        sci_frame = read_frame(sci_path)
        ref_frame = read_frame(ref_path)
    prepared = prepare_images(ref_frame.data, sci_frame.data, ref_frame.header,
                              sci_frame.header, ref_path=ref_path, sci_path=sci_path,
                              gains=(ref_frame.meta.gain, sci_frame.meta.gain), method=method,
                              catalogue=catalogue)
    prepared.timings = {**timings, **prepared.timings}
    return prepared


def prepare_images(ref_raw: np.ndarray, sci_raw: np.ndarray, ref_header: fits.Header,
                   sci_header: fits.Header, *, ref_path: str = "ref", sci_path: str = "sci",
                   gains: tuple[float, float] = (1.0, 1.0), method: str = "zogy",
                   catalogue: pd.DataFrame | None = None) -> PreparedPair:
    """Align the reference to the science image and subtract.

    Parameters
    ----------
    ref_raw, sci_raw : numpy.ndarray
        Images in ADU (any shapes).
    ref_header, sci_header : astropy.io.fits.Header
        For SATURATE, zero points and WCS.
    ref_path, sci_path : str
        Names used in errors.
    gains : (float, float)
        e-/ADU of the reference and the science image.
    method : {"zogy", "gaussian"}
        Proper-image subtraction, or the classical Gaussian-basis kernel match.
    catalogue : pandas.DataFrame, optional
        Stars with ``x, y`` (science px) and ``mag``, for the zero point when the headers
        have none.
    """
    timings: dict[str, float] = {}
    sci_raw = np.asarray(sci_raw, np.float32)
    ref_raw = np.asarray(ref_raw, np.float32)
    gain_ref, gain_sci = gains
    sat_sci = saturation_level(sci_raw, sci_header)
    sat_ref = saturation_level(ref_raw, ref_header)
    with _timed(timings, "background_s"):
        sci_sat_mask = _saturated(sci_raw, sat_sci, sci_path)
        ref_sat_mask = _saturated(ref_raw, sat_ref, ref_path)
        sci_bkg = measure_background(sci_raw, sci_sat_mask)
        ref_bkg = measure_background(ref_raw, ref_sat_mask)
        sci = sci_raw - sci_bkg.level
        ref_sub = ref_raw - ref_bkg.level
    with _timed(timings, "cosmic_rays_s"):
        sci = clean_cosmic_rays(sci, sci_bkg.rms, gain_sci, sci_sat_mask)
        ref_sub = clean_cosmic_rays(ref_sub, ref_bkg.rms, gain_ref, ref_sat_mask)
    with _timed(timings, "stars_s"):
        sci_stars = find_stars(sci, sci_bkg.rms, sci_sat_mask, ALIGN_THRESHOLD)
        ref_stars = find_stars(ref_sub, ref_bkg.rms, ref_sat_mask, ALIGN_THRESHOLD)
    with _timed(timings, "align_s"):
        alignment = align(np.stack([sci_stars["x"], sci_stars["y"]], 1),
                          np.stack([ref_stars["x"], ref_stars["y"]], 1), sci_header,
                          ref_header, sci.shape, ref_sub.shape, sci_path)
        ref, covered = warp_to(ref_sub, alignment, sci.shape)
        ref_sat, _ = warp_to(ref_sat_mask.astype(np.float32), alignment, sci.shape)
    saturated = sci_sat_mask | (ref_sat > 0.01)
    mask = ~covered | saturated
    noise_ref = _masked_rms(ref, mask)
    with _timed(timings, "psf_s"):
        ref_stars = find_stars(ref, noise_ref, mask, ALIGN_THRESHOLD)
        sci_common, ref_common = _common_stars(sci_stars, ref_stars)
        psf_sci = measure_psf(sci, sci_common, sat_sci - float(np.median(sci_bkg.level)),
                              sci_path)
        psf_ref = measure_psf(ref, ref_common, sat_ref - float(np.median(ref_bkg.level)),
                              ref_path)
        ratio = _flux_ratio(sci, ref, sci_common, mask, psf_sci, psf_ref, sci_bkg.rms)
    sci[mask] = 0.0
    ref[mask] = 0.0
    with _timed(timings, "subtract_s"):
        if method == "zogy":
            sub = zogy(sci, ref, psf_sci, psf_ref, sci_bkg.rms, noise_ref, ratio,
                       gain_sci, gain_ref)
        elif method == "gaussian":
            sub = gaussian_kernel_difference(sci, ref, psf_sci, psf_ref, ratio, sci_bkg.rms,
                                             noise_ref)
        else:
            raise ValueError(f"method must be 'zogy' or 'gaussian', not {method!r}")
        sub.diff[mask] = 0.0
        sub.score[mask] = 0.0
    zp, zp_source = _zero_point(sci_header, ref_header, ratio, catalogue, sci,
                                psf_sci)
    return PreparedPair(sci=sci.astype(np.float32), ref=ref, noise_sci=sci_bkg.rms,
                        noise_ref=noise_ref, psf_sci=psf_sci, psf_ref=psf_ref, mask=mask,
                        saturated=saturated, ref_native=ref_sub.astype(np.float32),
                        subtraction=sub, alignment=alignment, zero_point=zp,
                        zero_point_source=zp_source, gain_sci=gain_sci,
                        gain_ref=gain_ref, timings=timings)


def clean_cosmic_rays(image: np.ndarray, noise: float, gain: float, mask: np.ndarray
                      ) -> np.ndarray:
    """``image`` (background-subtracted, ADU) with the pixels L.A.Cosmic (astroscrappy)
    finds sharper than the PSF replaced by the median of their neighbours: cosmic rays and
    hot pixels would otherwise hide transients next to them (one peak in S_corr)."""
    import astroscrappy

    variance = (noise**2 + np.clip(image, 0, None) / gain).astype(np.float32)
    _, clean = astroscrappy.detect_cosmics(np.ascontiguousarray(image, np.float32),
                                           inmask=mask, invar=variance, gain=gain,
                                           readnoise=0.0, satlevel=np.inf, niter=1,
                                           sigclip=4.5, objlim=5.0)
    return clean.astype(np.float32)


def _masked_rms(image: np.ndarray, mask: np.ndarray) -> float:
    """Robust rms (1.4826 MAD) of the unmasked pixels, sampled every 3rd pixel."""
    values = image[::3, ::3][~mask[::3, ::3]]
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _zero_point(sci_header: fits.Header, ref_header: fits.Header, ratio: float,
                catalogue: pd.DataFrame | None, sci: np.ndarray, psf: np.ndarray
                ) -> tuple[float | None, str]:
    """Science zero point: its header, the reference's through the flux ratio, a catalogue."""
    zp, key = header_zero_point(sci_header)
    if zp is not None:
        return zp, f"science header {key}"
    zp, key = header_zero_point(ref_header)
    if zp is not None:
        return zp + 2.5 * math.log10(ratio), f"reference header {key} and the flux ratio"
    if catalogue is not None and len(catalogue):
        from skytriage.transients.photometry import catalogue_zero_point

        zp = catalogue_zero_point(sci, psf, catalogue)
        if zp is not None:
            return zp, "catalogue stars"
    return None, "none"


def find_candidates(score: np.ndarray, mask: np.ndarray,
                    threshold: float = DETECTION_THRESHOLD) -> pd.DataFrame:
    """Positive and negative peaks of ``S_corr`` above ``threshold`` sigma.

    Returns
    -------
    pandas.DataFrame
        ``x, y`` (px, parabolic sub-pixel peak), ``snr`` (peak S_corr, negative for
        fading), ``npix`` (pixels above the threshold).
    """
    rows = []
    for sign in (1.0, -1.0):
        data = np.ascontiguousarray(sign * score, dtype=np.float32)
        objects = sep.extract(data, threshold, mask=mask, minarea=3, filter_kernel=None,
                              deblend_cont=0.01)
        for obj in objects:
            x, y, peak = _parabolic_peak(data, int(obj["xpeak"]), int(obj["ypeak"]))
            rows.append((x, y, sign * peak, int(obj["npix"])))
    table = pd.DataFrame(rows, columns=["x", "y", "snr", "npix"])
    return table.sort_values("snr", key=np.abs, ascending=False, ignore_index=True)


def _parabolic_peak(data: np.ndarray, ix: int, iy: int) -> tuple[float, float, float]:
    """Sub-pixel peak by a parabola through the peak pixel and its neighbours on each axis."""
    ny, nx = data.shape
    value = float(data[iy, ix])

    def offset(lo: float, hi: float) -> float:
        curve = lo - 2 * value + hi
        return float(np.clip(0.5 * (lo - hi) / curve, -0.5, 0.5)) if curve < 0 else 0.0

    dx = offset(data[iy, ix - 1], data[iy, ix + 1]) if 0 < ix < nx - 1 else 0.0
    dy = offset(data[iy - 1, ix], data[iy + 1, ix]) if 0 < iy < ny - 1 else 0.0
    return ix + dx, iy + dy, value
