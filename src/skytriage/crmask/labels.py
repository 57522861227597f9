"""Training labels from real data: repeated exposures of one field, aligned and
median-combined; each exposure's positive outliers against the median are its cosmic rays
(the method behind deepCR's HST labels)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from skytriage.crmask.detect import BIT_COSMIC_RAY, BIT_SATURATED, saturation_level, saturation_mask
from skytriage.errors import SkytriageInputError
from skytriage.io import read_frame, write_fits

SEED_SIGMA = 5.0
"""An outlier starts at this many sigma above the exposure's model ..."""
GROW_SIGMA = 2.0
"""... and grows into neighbours above this many sigma (the simulator's truth level)."""
PROFILE_ERROR = 0.03
"""Fractional model error of bright pixels (residual misalignment, seeing changes)."""


@dataclass
class LabelledExposure:
    """One exposure with labels: ``image`` (ADU), ``model`` (the aligned, scaled median
    in this exposure's frame, ADU), ``mask`` (uint16: 1 cosmic ray, 32 saturated) and the
    ``shift`` ``(dy, dx)`` (px) of this exposure against the first."""

    path: str
    image: np.ndarray
    model: np.ndarray
    mask: np.ndarray
    shift: tuple[float, float]
    gain: float
    readnoise: float
    header: fits.Header

    @property
    def clean(self) -> np.ndarray:
        """The exposure with its cosmic-ray pixels replaced by the model."""
        return np.where((self.mask & BIT_COSMIC_RAY) > 0, self.model, self.image).astype(
            np.float32)


def _sky(image: np.ndarray) -> float:
    return float(np.median(image))


def measure_shift(reference: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """Shift ``(dy, dx)`` (px, to 0.1 px) that moves ``image`` onto ``reference``."""
    def prepared(a: np.ndarray) -> np.ndarray:
        a = ndimage.median_filter(a - _sky(a), size=3)  # cosmic rays must not steer it
        return np.clip(a, 0, np.percentile(a, 99.5))

    shift, _, _ = phase_cross_correlation(prepared(reference), prepared(image),
                                          upsample_factor=10, normalization=None)
    return float(shift[0]), float(shift[1])


def label_exposures(paths: list[str | os.PathLike], *, gain: float | None = None,
                    readnoise: float | None = None) -> list[LabelledExposure]:
    """Align, median-combine and label each exposure's cosmic rays.

    Parameters
    ----------
    paths : list of path-like
        At least 3 exposures of the same field, same shape, in ADU.
    gain, readnoise : float, optional
        e-/ADU and e-, overriding the headers.

    Returns
    -------
    list of LabelledExposure

    Raises
    ------
    SkytriageInputError
        Fewer than 3 exposures, shapes that differ.
    """
    if len(paths) < 3:
        raise SkytriageInputError(paths[0] if paths else "<none>",
                                  f"need at least 3 exposures of one field, got {len(paths)}")
    frames = [read_frame(p, gain=gain, readnoise=readnoise) for p in paths]
    shape = frames[0].data.shape
    for frame in frames[1:]:
        if frame.data.shape != shape:
            raise SkytriageInputError(frame.path, f"shape {frame.data.shape} differs from "
                                                  f"{shape} of {frames[0].path}")
    reference = frames[0].data
    shifts = [(0.0, 0.0)] + [measure_shift(reference, f.data) for f in frames[1:]]
    skies = [_sky(f.data) for f in frames]
    aligned = np.stack([ndimage.shift(f.data - s, sh, order=1, mode="nearest")
                        for f, s, sh in zip(frames, skies, shifts, strict=True)])
    median = np.median(aligned, axis=0)
    out = []
    for frame, sky, shift in zip(frames, skies, shifts, strict=True):
        back = ndimage.shift(median, (-shift[0], -shift[1]), order=1, mode="nearest")
        model = _scaled(back, frame.data - sky) + sky
        mask = _label(frame.data, model, frame.meta.gain, frame.meta.readnoise or 0.0,
                      frame.header)
        out.append(LabelledExposure(frame.path, frame.data, model.astype(np.float32), mask,
                                    shift, frame.meta.gain, frame.meta.readnoise or 0.0,
                                    frame.header))
    return out


def _scaled(model: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``model`` scaled to ``image`` (transparency changes) on the bright pixels."""
    bright = model > np.percentile(model, 99)
    ratio = np.median(image[bright] / np.maximum(model[bright], 1e-6)) if bright.any() else 1.0
    return model * float(np.clip(ratio, 0.5, 2.0))


def _label(image: np.ndarray, model: np.ndarray, gain: float, readnoise: float,
           header: fits.Header) -> np.ndarray:
    """Cosmic-ray flags: positive outliers above :data:`SEED_SIGMA`, grown to
    :data:`GROW_SIGMA`; saturated pixels get bit 32 instead."""
    sky = _sky(image)
    sky_var = float(np.var(np.clip(image - model, *np.percentile(image - model, [5, 95]))))
    sigma = np.sqrt(sky_var + np.maximum(model - sky, 0) / gain
                    + (PROFILE_ERROR * np.maximum(model - sky, 0)) ** 2)
    excess = (image - model) / sigma
    seeds = excess > SEED_SIGMA
    grown = ndimage.binary_propagation(seeds, structure=np.ones((3, 3), bool),
                                       mask=excess > GROW_SIGMA)
    level = saturation_level(image, header.get("SATURATE"))
    saturated = saturation_mask(image, level)
    mask = np.zeros(image.shape, np.uint16)
    mask[grown & ~saturated] = BIT_COSMIC_RAY
    mask[saturated] = BIT_SATURATED
    return mask


def write_training(labelled: list[LabelledExposure], out_dir: str | os.PathLike) -> list[Path]:
    """Write each exposure and its labels in the layout of ``skytriage simulate crmask``
    (``stem.fits``, ``truth/stem_mask.fits``, ``truth/stem_clean.fits``)."""
    out_dir = Path(out_dir)
    written = []
    for item in labelled:
        stem = Path(item.path).name.split(".")[0]
        header = item.header.copy()
        header["GAIN"], header["RDNOISE"] = item.gain, item.readnoise
        header["CRSHIFTY"], header["CRSHIFTX"] = item.shift
        written.append(write_fits(out_dir / f"{stem}.fits", item.image, header))
        write_fits(out_dir / "truth" / f"{stem}_mask.fits", item.mask)
        write_fits(out_dir / "truth" / f"{stem}_clean.fits", item.clean, header)
    return written
