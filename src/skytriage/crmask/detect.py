"""The classical side of crmask: noise model, saturation, L.A.Cosmic, masked-median inpainting.

Everything here works in the input's units (ADU) with the gain in e-/ADU. The noise model
is measured from the data (background and its rms from sep) and only the Poisson noise of
sources above the background uses the gain, so sky-subtracted images, images with a bias
level and images in other units are handled the same way; a gain that cannot be true for
the data is refused (:func:`check_gain`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import sep
from scipy import ndimage

from skytriage.errors import SkytriageInputError

BIT_COSMIC_RAY = 1
BIT_BAD = 8
BIT_SATURATED = 32

GAIN_TOLERANCE = 3.0
"""The background variance may differ this many times from what the gain predicts."""


@dataclass
class NoiseModel:
    """Background and noise of one image, all float32 ``(ny, nx)`` in ADU.

    Attributes
    ----------
    background : numpy.ndarray
        Smooth background level.
    background_rms : numpy.ndarray
        Noise of the background.
    sigma : numpy.ndarray
        Expected noise of each pixel without cosmic rays: background rms and the
        Poisson noise of the (3×3-median) source signal above the background.
    gain : float
        e-/ADU used for the source term.
    """

    background: np.ndarray
    background_rms: np.ndarray
    sigma: np.ndarray
    gain: float

    @property
    def sky_rms(self) -> float:
        """Median background rms (ADU)."""
        return float(np.median(self.background_rms))


def noise_model(image: np.ndarray, gain: float, ignore: np.ndarray | None = None,
                mesh: int = 64) -> NoiseModel:
    """Measure the background and per-pixel noise of an image.

    Parameters
    ----------
    image : numpy.ndarray
        float32 ADU, shape ``(ny, nx)``, finite.
    gain : float
        e-/ADU.
    ignore : numpy.ndarray of bool, optional
        Pixels to leave out of the background (saturated, bad).
    mesh : int
        Background mesh size (px); smaller images use a quarter of their shorter side.
    """
    image = np.ascontiguousarray(image, dtype=np.float32)
    mesh = int(max(8, min(mesh, min(image.shape) // 4)))
    bkg = sep.Background(image, mask=ignore, bw=mesh, bh=mesh, fw=3, fh=3)
    background, rms = bkg.back(), np.maximum(bkg.rms(), 1e-6)
    signal = np.maximum(cv2.medianBlur(image, 3) - background, 0)
    sigma = np.sqrt(rms * rms + signal / np.float32(gain))
    return NoiseModel(background.astype(np.float32), rms.astype(np.float32),
                      sigma.astype(np.float32), float(gain))


def check_gain(path: str, noise: NoiseModel, readnoise: float | None) -> str | None:
    """Refuse a gain that the background noise contradicts.

    When the image still holds its sky (background well above its rms), the background
    variance must be close to ``sky / gain + (readnoise / gain)^2``. Too much noise for
    the gain (gain too large, or data in e-/s or other scaled units) raises; too little
    (a bias level left in, or a gain too small) only returns a note, since the noise model
    uses the measured rms for the background anyway.

    Returns
    -------
    str or None
        A note for summary.json, or None when all is well.

    Raises
    ------
    SkytriageInputError
        When the measured variance exceeds the prediction by more than
        :data:`GAIN_TOLERANCE`.
    """
    sky, rms = float(np.median(noise.background)), noise.sky_rms
    if sky < 5 * rms:
        return "background near zero (sky subtracted?): gain not checked against the noise"
    rn_adu = (readnoise or 0.0) / noise.gain
    predicted = sky / noise.gain + rn_adu**2
    ratio = rms**2 / predicted
    implied = sky / max(rms**2 - rn_adu**2, 1e-12)
    if ratio > GAIN_TOLERANCE:
        raise SkytriageInputError(
            path, f"gain {noise.gain:g} e-/ADU does not fit the data: background {sky:.4g} "
                  f"ADU with rms {rms:.3g} ADU implies about {implied:.3g} e-/ADU (are the "
                  f"pixels in ADU? pass --gain)")
    if ratio < 1 / GAIN_TOLERANCE:
        return (f"background noise is {1 / ratio:.1f}x lower than gain {noise.gain:g} "
                f"predicts (bias level left in, or gain too small: implied {implied:.3g})")
    return None


def saturation_level(image: np.ndarray, header_level: float | None) -> float | None:
    """The saturation level (ADU): the header's, else a plateau of equal maximal pixels.

    A plateau is at least 4 pixels sharing the image's maximum value: clipped data; an
    image whose brightest pixels all differ has no detectable saturation (None).
    """
    if header_level is not None:
        return float(header_level)
    top = float(np.max(image))
    return top if np.count_nonzero(image == top) >= 4 else None


def saturation_mask(image: np.ndarray, level: float | None) -> np.ndarray:
    """Pixels at or above ``level`` (cores and bleed trails), grown by one pixel."""
    if level is None:
        return np.zeros(image.shape, dtype=bool)
    core = image >= np.float32(level) * np.float32(0.999)
    return ndimage.binary_dilation(core, np.ones((3, 3), bool)) if core.any() else core


def lacosmic(image: np.ndarray, noise: NoiseModel, ignore: np.ndarray, *, sigclip: float = 4.5,
             objlim: float = 5.0, niter: int = 4) -> np.ndarray:
    """L.A.Cosmic (van Dokkum 2001) through astroscrappy, with our noise model.

    astroscrappy's own noise model needs the sky left in the image, the gain in e-/ADU
    and the read noise in e-, and its ``satlevel`` is in electrons: the usual traps. We
    pass the variance (``invar``, ADU²) and the pixels to ignore (``inmask``) instead,
    so none of them applies.

    Returns
    -------
    numpy.ndarray
        bool cosmic-ray mask, shape of ``image``.
    """
    import astroscrappy

    mask, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(image, np.float32), inmask=ignore,
        invar=(noise.sigma * noise.sigma).astype(np.float32), sigclip=sigclip, objlim=objlim,
        gain=1.0, readnoise=0.0, satlevel=np.inf, niter=niter, sepmed=True,
        cleantype="medmask")
    return mask & ~ignore


LINE_MIN_LENGTH = 40.0
"""A flagged feature at least this long (px) along a detector axis may be a line, not a hit."""
LINE_MAX_ANGLE = 2.0
"""Largest angle (degrees) between such a line and a detector row or column."""
LINE_MIN_COVERAGE = 0.9
"""Share of the positions along such a line that it must cover (no gaps)."""
LINE_MAX_WANDER = 1.0
"""Largest rms (px) of its centre line across its direction."""
LINE_MAX_WIDTH = 10.0
"""Largest mean width (px) of such a line."""


def axis_aligned_lines(mask: np.ndarray) -> np.ndarray:
    """Flagged features that are straight lines along a detector row or column.

    Sky lines of a long-slit spectrum, hot or charge-trapping columns and rows, and
    overscan edges are sharp and straight and fool a detector trained on cosmic rays, yet
    a cosmic-ray track rarely runs within :data:`LINE_MAX_ANGLE` of an axis for
    :data:`LINE_MIN_LENGTH` px or more (fewer than one simulated track in a thousand).

    Parameters
    ----------
    mask : numpy.ndarray of bool
        ``(ny, nx)`` flagged pixels.

    Returns
    -------
    numpy.ndarray of bool
        ``(ny, nx)``: the pixels of the 8-connected components that are such lines.
    """
    labels, _ = ndimage.label(mask, np.ones((3, 3), bool))
    lines = np.zeros(mask.shape, bool)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or max(box[0].stop - box[0].start,
                              box[1].stop - box[1].start) < LINE_MIN_LENGTH:
            continue
        component = labels[box] == index
        if _is_axis_line(*np.nonzero(component)):
            lines[box] |= component
    return lines


def _is_axis_line(ys: np.ndarray, xs: np.ndarray) -> bool:
    """Whether pixels ``(ys, xs)`` form a long, straight, unbroken band along a row or
    column (overlapping cosmic rays that happen to line up wander across it or leave gaps)."""
    coords = np.vstack([xs - xs.mean(), ys - ys.mean()])
    _, vectors = np.linalg.eigh(np.cov(coords))
    major = vectors[:, 1]
    along = np.round(major @ coords).astype(int)
    across = np.array([-major[1], major[0]]) @ coords
    length = int(along.max() - along.min() + 1)
    angle = np.degrees(np.arctan2(abs(major[1]), abs(major[0])))
    if length < LINE_MIN_LENGTH or min(angle, 90 - angle) > LINE_MAX_ANGLE:
        return False
    counts = np.bincount(along - along.min(), minlength=length)
    centres = np.bincount(along - along.min(), across, minlength=length)[counts > 0] \
        / counts[counts > 0]
    return (np.mean(counts > 0) >= LINE_MIN_COVERAGE and np.std(centres) <= LINE_MAX_WANDER
            and ys.size / np.count_nonzero(counts) <= LINE_MAX_WIDTH)


#: Sources whose 5x5-median level stands this many background rms above the background
#: (and 2 px around them) are "near a star" for :func:`grow_near_sources`.
STAR_LEVEL_RMS = 20.0


def grow_near_sources(probability: np.ndarray, seeds: np.ndarray, image: np.ndarray,
                      noise: NoiseModel, floor: float) -> np.ndarray:
    """Grow cosmic-ray seeds into the pixels near bright sources whose probability passes
    a lower ``floor``.

    A network trained for pixel F1 gives the pixels of a hit on a bright star core a lower
    probability than the same hit on sky; letting a confident seed grow there (8-connected,
    only near sources brighter than :data:`STAR_LEVEL_RMS` background rms in the 5x5
    median) recovers most of them without flagging clean cores, which have no seed.

    Parameters
    ----------
    probability : numpy.ndarray
        float32 ``(ny, nx)`` cosmic-ray probability.
    seeds : numpy.ndarray
        bool ``(ny, nx)``: pixels flagged at the main cut.
    image : numpy.ndarray
        float32 ``(ny, nx)`` pixels (ADU).
    noise : NoiseModel
        Background and its rms (ADU).
    floor : float
        Probability a grown pixel needs.

    Returns
    -------
    numpy.ndarray
        bool ``(ny, nx)``: the seeds and what grew from them.
    """
    level = cv2.medianBlur(np.ascontiguousarray(image, np.float32), 5) - noise.background
    near = ndimage.binary_dilation(level > STAR_LEVEL_RMS * noise.background_rms,
                                   iterations=2)
    allowed = seeds | (near & (probability > floor))
    return ndimage.binary_propagation(seeds, np.ones((3, 3), bool), mask=allowed)


def median_inpaint(image: np.ndarray, replace: np.ndarray, half: int = 2) -> np.ndarray:
    """Replace pixels by the median of the unmasked pixels around them.

    The window starts at ``(2 half + 1)²`` and grows by 2 px for pixels that have fewer
    than 3 usable neighbours (inside long tracks or saturated cores).

    Parameters
    ----------
    image : numpy.ndarray
        float32, shape ``(ny, nx)``.
    replace : numpy.ndarray of bool
        Pixels to replace; they are also never used as neighbours.

    Returns
    -------
    numpy.ndarray
        float32 copy of ``image`` with the ``replace`` pixels filled.
    """
    out = np.array(image, dtype=np.float32, copy=True)
    todo = np.argwhere(replace)
    values = np.where(replace, np.nan, out)
    while todo.size and half <= 16:
        padded = np.pad(values, half, mode="constant", constant_values=np.nan)
        offsets = np.arange(-half, half + 1)
        rows = todo[:, 0, None, None] + half + offsets[None, :, None]
        cols = todo[:, 1, None, None] + half + offsets[None, None, :]
        windows = padded[rows, cols].reshape(len(todo), -1)
        usable = np.count_nonzero(np.isfinite(windows), axis=1) >= 3
        if usable.any():
            done = todo[usable]
            out[done[:, 0], done[:, 1]] = np.nanmedian(windows[usable], axis=1)
        todo, half = todo[~usable], half + 2
    if todo.size:
        out[todo[:, 0], todo[:, 1]] = float(np.nanmedian(values))
    return out
