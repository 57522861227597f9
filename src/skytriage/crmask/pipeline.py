"""``skytriage crmask``: one exposure in, a cosmic-ray mask and a cleaned image out."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits

from skytriage.crmask.detect import (
    BIT_BAD,
    BIT_COSMIC_RAY,
    BIT_SATURATED,
    axis_aligned_lines,
    check_gain,
    grow_near_sources,
    lacosmic,
    median_inpaint,
    noise_model,
    saturation_level,
    saturation_mask,
)
from skytriage.crmask.model import CrMaskNet, Inpainter, network_inputs, star_region
from skytriage.crmask.pointsource import point_source_pixels
from skytriage.crmask.stars import fit_profile, star_cosmics
from skytriage.errors import SkytriageInputError, SkytriageUsageError
from skytriage.io import read_frame, write_fits
from skytriage.nn import shipped_weights

METHODS = ("unet", "lacosmic")
INPAINTERS = ("unet", "median")
MIN_SIDE = 16
MAX_BAD_FRACTION = 0.5
SATURATION_KEYS = ("SATURATE", "SATLEVEL", "SATURATION")
MASK_MODEL = "crmask_unet.pt"
STAR_MODEL = "crmask_starnet.pt"
INPAINT_MODEL = "crmask_inpaint.pt"


@dataclass
class CrMaskResult:
    """What crmask found in one exposure.

    Attributes
    ----------
    mask : numpy.ndarray
        uint16 flags ``(ny, nx)``: 1 cosmic ray, 8 bad (NaN/inf) pixel, 32 saturated.
    clean : numpy.ndarray
        float32 ``(ny, nx)`` in the input's units: cosmic-ray and bad pixels inpainted.
    probability : numpy.ndarray or None
        float32 cosmic-ray probability (``unet`` only).
    header : astropy.io.fits.Header
        The input's header (BUNIT, WCS, ...), copied to the outputs.
    info : dict
        Method, threshold, gain, noise, counts, timings and notes (for summary.json).
    """

    mask: np.ndarray
    clean: np.ndarray
    probability: np.ndarray | None
    header: fits.Header
    info: dict = field(default_factory=dict)

    @property
    def cosmic_rays(self) -> np.ndarray:
        """bool map of pixels flagged as cosmic rays."""
        return (self.mask & BIT_COSMIC_RAY) > 0

    def write(self, out_dir: str | os.PathLike, *, command: str = "skytriage crmask"
              ) -> list[Path]:
        """Write ``mask.fits`` and ``clean.fits`` into ``out_dir`` (atomically)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        provenance = {"command": command, "parameters": {
            k: self.info[k] for k in ("method", "threshold", "star_net", "star_floor", "star_model",
                                      "point_source_test", "gain", "inpaint")
            if k in self.info}}
        header = self.header.copy()
        mask_header = fits.Header([(k, header[k]) for k in _WCS_KEYS if k in header])
        mask_header["MASKBITS"] = ("1 CR, 8 BAD, 32 SATURATED", "flag bits")
        header["BUNIT"] = self.info.get("bunit", header.get("BUNIT", "adu"))
        return [write_fits(out_dir / "mask.fits", self.mask, mask_header, provenance=provenance),
                write_fits(out_dir / "clean.fits", self.clean.astype(np.float32), header,
                           provenance=provenance)]


_WCS_KEYS = ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2",
             "CD2_1", "CD2_2", "CDELT1", "CDELT2", "CUNIT1", "CUNIT2", "EQUINOX", "RADESYS")


@lru_cache(maxsize=4)
def load_mask_model(path: str | None = None) -> CrMaskNet:
    """The mask network at ``path``, or the shipped one."""
    return CrMaskNet.load(path or shipped_weights(MASK_MODEL))


def load_star_net(path: str | None = None) -> CrMaskNet:
    """The star-region network at ``path``, or the shipped one."""
    return CrMaskNet.load(path or shipped_weights(STAR_MODEL))


@lru_cache(maxsize=4)
def load_inpainter(path: str | None = None) -> Inpainter:
    """The inpainting network at ``path``, or the shipped one."""
    return Inpainter.load(path or shipped_weights(INPAINT_MODEL))


def run_file(path: str | os.PathLike, **options) -> CrMaskResult:
    """Read one FITS exposure (primary HDU or first image extension) and run :func:`run`.

    ``gain`` and ``readnoise`` options win over the header (GAIN/EGAIN, RDNOISE in the
    data's or the primary header); ``saturation`` over SATURATE/SATLEVEL.
    """
    gain, readnoise = options.pop("gain", None), options.pop("readnoise", None)
    frame = read_frame(path, dtype=None, gain=gain, readnoise=readnoise, nonfinite="keep")
    if options.get("saturation") is None:
        options["saturation"] = next((float(frame.header[k]) for k in SATURATION_KEYS
                                      if k in frame.header), None)
    info = {"input_dtype": str(frame.data.dtype), "bunit": frame.meta.bunit,
            "hdu": frame.hdu}
    result = run(frame.data, gain=frame.meta.gain, readnoise=frame.meta.readnoise,
                 header=frame.header, path=frame.path, **options)
    result.info.update(info)
    return result


def run(image: np.ndarray, *, method: str = "unet", gain: float = 1.0,
        readnoise: float | None = None, threshold: float | None = None,
        saturation: float | None = None, inpaint: str = "median", model: str | None = None,
        inpaint_model: str | None = None, star_net: bool = False,
        star_net_model: str | None = None, star_floor: float | None = None,
        star_model: bool = False, point_source_test: bool = True,
        header: fits.Header | None = None, path: str = "<array>") -> CrMaskResult:
    """Mask cosmic rays in one exposure and inpaint them.

    Parameters
    ----------
    image : numpy.ndarray
        2-D pixels in ADU (any numeric dtype; integers are used as float32).
    method : {"unet", "lacosmic"}
        The shipped U-Net, or L.A.Cosmic (astroscrappy) with skytriage's noise model.
    gain : float
        e-/ADU.
    readnoise : float, optional
        e-; only used to check the gain.
    threshold : float, optional
        ``unet``: probability cut (default: the model's, tuned for F1); ``lacosmic``:
        ``sigclip`` (default 4.5).
    saturation : float, optional
        Saturation level (ADU); default: a plateau at the image maximum, if any.
    inpaint : {"median", "unet"}
        The masked 5×5 median (default: the better photometry in docs/results.md) or the
        learned correction of it.
    model, inpaint_model, star_net_model : str, optional
        Checkpoints to use instead of the shipped ones.
    star_net : bool
        ``unet`` only: on stars and galaxies (:func:`~skytriage.crmask.model.star_region`)
        the star-region network decides instead of the U-Net: more hits on stars found,
        better photometry, F1 higher, at 2–4× the time (more than astroscrappy on a 4096²
        image; docs/results.md).
    star_floor : float, optional
        ``unet`` only: near bright sources, grow each flagged hit into neighbours whose
        probability passes this lower cut (:func:`~skytriage.crmask.detect.grow_near_sources`):
        more of the hits on star cores at a small cost in F1 (docs/results.md).
    star_model : bool
        Either method: fit every star with one elliptical Moffat profile
        (:mod:`skytriage.crmask.stars`); where the trusted stars' light exceeds 3 rms, flag
        excesses over the model and unflag pixels the model explains; small flagged
        features the profile fits better than a cosmic-ray spot are unflagged as faint
        stars. Finds more hits on stars, flags fewer clean cores; costs seconds per
        megapixel (docs/results.md).
    point_source_test : bool
        Without ``star_model``: fit the image's profile to its sharp bright stars
        (:func:`~skytriage.crmask.stars.fit_profile`, seconds) and give back the small
        flagged features it fits better than a cosmic-ray spot (faint star cores;
        :mod:`~skytriage.crmask.pointsource`). ``star_model`` always does this.
    header : astropy.io.fits.Header, optional
        Copied to the outputs.
    path : str
        Named in errors.

    Returns
    -------
    CrMaskResult
        Whatever the method, straight features along a row or column (sky lines, bad
        columns; :func:`~skytriage.crmask.detect.axis_aligned_lines`) are left unmasked
        and counted in ``info["line_pixels"]``.

    Raises
    ------
    SkytriageInputError
        Not 2-D, smaller than 16×16 px, more than half the pixels NaN/inf, or a gain
        the background noise contradicts.
    """
    if method not in METHODS:
        raise SkytriageUsageError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if inpaint not in INPAINTERS:
        raise SkytriageUsageError(
            f"--inpaint must be one of {', '.join(INPAINTERS)}, not {inpaint!r}")
    if star_floor is not None and (method != "unet" or not 0 < star_floor < 1):
        raise SkytriageUsageError(
            f"--star-floor needs --method unet and a probability between 0 and 1, not "
            f"{star_floor!r} with --method {method}")
    if star_net and method != "unet":
        raise SkytriageUsageError(f"--star-net needs --method unet, not --method {method}")
    t0 = time.perf_counter()
    data, bad = _checked_pixels(image, path)
    level = saturation_level(data, saturation)
    saturated = saturation_mask(data, level) & ~bad
    ignore = bad | saturated
    if bad.any():
        data = median_inpaint(data, bad)
    noise = noise_model(data, gain, ignore=ignore)
    notes = [n for n in [check_gain(path, noise, readnoise)] if n]
    probability = None
    if method == "unet":
        masker = load_mask_model(model)
        channels = network_inputs(data, noise)
        probability = masker.probabilities(channels)
        cut = masker.threshold if threshold is None else float(threshold)
        cosmic = (probability > cut) & ~ignore
        if star_net:
            cosmic = _star_region_decision(channels, ignore, probability, cosmic,
                                           star_net_model)
        del channels
        if star_floor is not None:
            cosmic = grow_near_sources(probability, cosmic, data, noise, star_floor) & ~ignore
    else:
        cut = 4.5 if threshold is None else float(threshold)
        cosmic = lacosmic(data, noise, ignore, sigclip=cut)
    star_info = {}
    if star_model:
        stage = star_cosmics(data, noise, ignore, prior=cosmic)
        cosmic = ((cosmic & ~stage.explained) | stage.cosmic) & ~ignore
        star_info = stage.info
    elif point_source_test:
        cosmic, star_info = _without_faint_stars(data, noise, ignore, cosmic)
    lines = axis_aligned_lines(cosmic)
    cosmic &= ~lines
    if lines.any():
        notes.append(f"{int(lines.sum())} flagged pixels on straight features along a row or "
                     "column (sky lines, bad columns) left unmasked")
    t_mask = time.perf_counter() - t0
    clean = median_inpaint(data, cosmic | saturated)
    clean[saturated] = data[saturated]
    if inpaint == "unet" and cosmic.any():
        clean = load_inpainter(inpaint_model).inpaint(clean, cosmic, noise)
    mask = np.zeros(data.shape, dtype=np.uint16)
    mask[cosmic] |= BIT_COSMIC_RAY
    mask[bad] |= BIT_BAD
    mask[saturated] |= BIT_SATURATED
    info = {"method": method, "threshold": cut, "star_net": star_net, "star_floor": star_floor,
            "star_model": star_model, "point_source_test": point_source_test or star_model,
            **star_info, "gain": gain,
            "readnoise": readnoise,
            "saturation_adu": level, "inpaint": inpaint, "sky_rms_adu": noise.sky_rms,
            "cosmic_ray_pixels": int(cosmic.sum()), "line_pixels": int(lines.sum()),
            "saturated_pixels": int(saturated.sum()),
            "bad_pixels": int(bad.sum()), "mask_seconds": round(t_mask, 3),
            "seconds": round(time.perf_counter() - t0, 3), "notes": notes}
    return CrMaskResult(mask, clean, probability, header or fits.Header(), info)


def _star_region_decision(channels: np.ndarray, ignore: np.ndarray, probability: np.ndarray,
                          cosmic: np.ndarray, path: str | None) -> np.ndarray:
    """``cosmic`` with the star-region network's decision on star and galaxy pixels;
    ``probability`` takes its probabilities there (in place)."""
    region = star_region(channels, ignore)
    if not region.any():
        return cosmic
    net = load_star_net(path)
    on_stars = net.probabilities(channels, where=region)
    probability[region] = on_stars[region]
    return np.where(region, on_stars > net.threshold, cosmic)


def _without_faint_stars(data: np.ndarray, noise, ignore: np.ndarray, cosmic: np.ndarray
                         ) -> tuple[np.ndarray, dict]:
    """``cosmic`` less the faint star cores the point-source test gives back, and what the
    test did (for summary.json); unchanged when the image has too few stars for a profile."""
    psf = fit_profile(data, noise, ignore, prior=cosmic)
    if psf is None:
        return cosmic, {"star_profile": None, "faint_star_pixels_unflagged": 0}
    faint = point_source_pixels(data, noise, cosmic, ignore, psf)
    return cosmic & ~faint, {"star_profile": psf.shape,
                             "faint_star_pixels_unflagged": int(faint.sum())}


def _checked_pixels(image: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 pixels and the map of non-finite ones; refuse what cannot be masked."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise SkytriageInputError(path, f"crmask needs a 2-D image, got shape {image.shape}")
    if min(image.shape) < MIN_SIDE:
        raise SkytriageInputError(
            path, f"image {image.shape[1]}x{image.shape[0]} px is smaller than "
                  f"{MIN_SIDE}x{MIN_SIDE}: too small to tell cosmic rays from stars")
    if image.dtype.kind not in "fiu":
        raise SkytriageInputError(path, f"pixels of type {image.dtype} are not numbers")
    data = np.array(image, dtype=np.float32)
    bad = ~np.isfinite(data)
    if bad.mean() > MAX_BAD_FRACTION:
        raise SkytriageInputError(path, f"{bad.mean():.0%} of the pixels are NaN or inf")
    return data, bad
