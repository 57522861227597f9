"""Point-spread functions: pixel-integrated, sub-pixel-centred, normalised stamps.

Every PSF answers three questions used by :func:`skytriage.sky.render_stars`:

- ``evaluate(dx, dy)``: the PSF integrated over the pixel whose centre lies at offset
  ``(dx, dy)`` px from the source (``dx`` along columns, ``dy`` along rows), any array
  shape, not normalised;
- ``radius(flux, threshold)``: the half-size (px) beyond which a source of ``flux`` e-
  adds less than ``threshold`` e- per pixel;
- ``footprint(radius)``: the integer pixel offsets ``(oy, ox)`` a stamp covers around the
  source's nearest pixel (a disk, or a capsule around a trail).

Pixel integration: the Gaussian is integrated exactly (product of error functions). Moffat,
donut and trailed PSFs average ``oversample x oversample`` point samples per pixel
(default 3 x 3, good to ~0.5 % for FWHM >= 2 px). Streaks use a Gaussian cross-section whose
variance is widened by 1/12 px^2, the variance of the pixel box, which is the pixel
integral to first order. Stamps are normalised to sum 1 over their footprint, so a source's
wings beyond the footprint are folded back in and the total flux is exact.

Angles are in degrees, measured from the +x (column) axis towards +y (row).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _as_radius(value: np.ndarray, minimum: float) -> np.ndarray:
    """Round radii up to integers, at least ``minimum`` px."""
    return np.ceil(np.maximum(value, minimum)).astype(np.int64)


def capsule_footprint(radius: int, length: float = 0.0,
                      angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets within ``radius`` px of a segment centred on the origin.

    Parameters
    ----------
    radius : int
        Half-width of the capsule (px); with ``length=0`` a disk of that radius.
    length : float
        Length of the segment (px).
    angle : float
        Direction of the segment (degrees from +x towards +y).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``oy, ox``: int64 row and column offsets, shape ``(K,)``. Built one line of pixels at
        a time along the major axis, so a trail across a whole frame stays cheap. The margin
        of half a pixel covers the sub-pixel position of the source.
    """
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    x_major = abs(c) >= abs(s)
    along, across = (c, s) if x_major else (s, c)
    half_major = 0.5 * length * abs(along) + radius + 1
    t = np.arange(-math.ceil(half_major), math.ceil(half_major) + 1)
    centre = np.rint(t * (across / along if along else 0.0)).astype(np.int64)
    width = math.ceil((radius + 1) / max(abs(along), 1e-12)) if length else radius + 1
    k = np.arange(-width, width + 1)
    major = np.repeat(t, k.size)
    minor = (centre[:, None] + k[None, :]).ravel()
    ox, oy = (major, minor) if x_major else (minor, major)
    proj = np.clip(ox * c + oy * s, -0.5 * length, 0.5 * length)
    dist2 = (ox - proj * c) ** 2 + (oy - proj * s) ** 2
    keep = dist2 <= (radius + 0.5) ** 2
    return oy[keep].astype(np.int64), ox[keep].astype(np.int64)


def _subpixel_offsets(oversample: int) -> np.ndarray:
    """Sample positions inside a pixel (px from its centre), shape ``(oversample,)``."""
    return ((np.arange(oversample) + 0.5) / oversample - 0.5).astype(np.float32)


class PSF(ABC):
    """What every PSF offers: pixel values, stamp radius, footprint, normalised stamps."""

    @abstractmethod
    def evaluate(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Pixel-integrated PSF at pixel-centre offsets ``dx, dy`` (px), float32."""

    @abstractmethod
    def radius(self, flux: np.ndarray, threshold: float) -> np.ndarray:
        """Stamp half-size (px, int64) so that the pixels left out hold < ``threshold`` e-."""

    def footprint(self, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column offsets ``(oy, ox)`` (int64, shape ``(K,)``) of a stamp."""
        return capsule_footprint(int(radius))

    def stamp(self, size: int, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        """A normalised ``(size, size)`` float32 stamp (sum 1).

        The source lies at pixel ``((size - 1) / 2 + dx, (size - 1) / 2 + dy)`` of the stamp
        (column, row), so ``dx = dy = 0`` centres it on the middle pixel of an odd stamp.
        """
        grid = np.arange(size, dtype=np.float32) - (size - 1) / 2
        values = self.evaluate(grid[None, :] - dx, grid[:, None] - dy)
        return (values / values.sum()).astype(np.float32)


class ProfilePSF(PSF):
    """A PSF given by its surface brightness, integrated over each pixel by oversampling."""

    oversample: int = 3

    @abstractmethod
    def profile(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Surface brightness (fraction of the flux per px^2) at offsets ``dx, dy`` (px)."""

    def evaluate(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Pixel-integrated PSF at pixel-centre offsets ``dx, dy`` (px), float32."""
        dx = np.asarray(dx, dtype=np.float32)
        dy = np.asarray(dy, dtype=np.float32)
        sub = _subpixel_offsets(self.oversample)
        total = np.zeros(np.broadcast_shapes(dx.shape, dy.shape), dtype=np.float32)
        for sy in sub:
            for sx in sub:
                total += self.profile(dx + sx, dy + sy)
        total /= sub.size**2
        return total


@dataclass(frozen=True)
class Gaussian(ProfilePSF):
    """Circular Gaussian PSF, integrated exactly over each pixel.

    Parameters
    ----------
    fwhm : float
        Full width at half maximum (px).
    """

    fwhm: float

    @property
    def sigma(self) -> float:
        """Standard deviation (px)."""
        return self.fwhm / FWHM_PER_SIGMA

    def profile(self, dx, dy):
        s2 = self.sigma**2
        r2 = np.asarray(dx, np.float32) ** 2 + np.asarray(dy, np.float32) ** 2
        return (np.exp(-0.5 * r2 / s2) / (2 * np.pi * s2)).astype(np.float32)

    def evaluate(self, dx, dy):
        scale = np.float32(1.0 / self.sigma)
        dx = np.asarray(dx, np.float32) * scale
        dy = np.asarray(dy, np.float32) * scale
        half = np.float32(0.5) * scale
        return (ndtr(dx + half) - ndtr(dx - half)) * (ndtr(dy + half) - ndtr(dy - half))

    def radius(self, flux, threshold):
        peak = np.asarray(flux, float) / (2 * np.pi * self.sigma**2)
        ratio = np.maximum(peak / threshold, 1.0)
        return _as_radius(self.sigma * np.sqrt(2 * np.log(ratio)), 1.5 * self.fwhm + 1)


@dataclass(frozen=True)
class Moffat(ProfilePSF):
    """Moffat PSF, ``I(r) = (beta - 1) / (pi alpha^2) (1 + r^2 / alpha^2)^-beta``.

    Parameters
    ----------
    fwhm : float
        Full width at half maximum (px).
    beta : float
        Wing exponent (> 1); 2.5-4.5 for seeing-limited stars.
    oversample : int
        Sub-samples per pixel and axis for the pixel integration.
    """

    fwhm: float
    beta: float = 3.0
    oversample: int = 3

    @property
    def alpha(self) -> float:
        """Core width parameter (px)."""
        return self.fwhm / (2 * math.sqrt(2 ** (1 / self.beta) - 1))

    def profile(self, dx, dy):
        inv_a2 = np.float32(1 / self.alpha**2)
        norm = np.float32((self.beta - 1) / (np.pi * self.alpha**2))
        r2 = (dx * dx + dy * dy) * inv_a2
        return norm * np.exp(np.float32(-self.beta) * np.log1p(r2))

    def radius(self, flux, threshold):
        peak = np.asarray(flux, float) * (self.beta - 1) / (np.pi * self.alpha**2)
        ratio = np.maximum(peak / threshold, 1.0)
        r = self.alpha * np.sqrt(ratio ** (1 / self.beta) - 1)
        return _as_radius(r, 1.5 * self.fwhm + 1)


@dataclass(frozen=True)
class Donut(ProfilePSF):
    """Defocused PSF: the image of an annular (centrally obscured) pupil, edges blurred.

    Parameters
    ----------
    radius_px : float
        Outer radius of the annulus (px).
    obscuration : float
        Inner radius as a fraction of the outer radius (secondary mirror), 0..1.
    blur : float
        Gaussian sigma (px) that softens both edges (seeing, pixel size).
    oversample : int
        Sub-samples per pixel and axis for the pixel integration.
    """

    radius_px: float
    obscuration: float = 0.35
    blur: float = 1.0
    oversample: int = 3

    def profile(self, dx, dy):
        r = np.sqrt(dx * dx + dy * dy)
        inv = np.float32(1 / self.blur)
        outer = ndtr((np.float32(self.radius_px) - r) * inv)
        inner = ndtr((np.float32(self.radius_px * self.obscuration) - r) * inv)
        area = np.pi * self.radius_px**2 * (1 - self.obscuration**2)
        return ((outer - inner) / np.float32(area)).astype(np.float32)

    def radius(self, flux, threshold):
        area = np.pi * self.radius_px**2 * (1 - self.obscuration**2)
        ratio = np.maximum(np.asarray(flux, float) / area / threshold, 1.0)
        return _as_radius(self.radius_px + self.blur * np.sqrt(2 * np.log(ratio)),
                          self.radius_px + 2 * self.blur + 1)


@dataclass(frozen=True)
class Trailed(PSF):
    """A PSF smeared uniformly along a short line (tracking error, wind shake).

    Parameters
    ----------
    psf : PSF
        The PSF of a still source.
    length : float
        Length of the smear (px); the source position is the middle of the line.
    angle : float
        Direction of the smear (degrees from +x towards +y).

    The smear is the mean of ``psf`` shifted to the midpoints of <= 0.5 px pieces of the
    line.
    """

    psf: PSF
    length: float
    angle: float = 0.0

    def evaluate(self, dx, dy):
        dx = np.asarray(dx, np.float32)
        dy = np.asarray(dy, np.float32)
        n = max(1, math.ceil(self.length / 0.5))
        t = ((np.arange(n) + 0.5) / n - 0.5).astype(np.float32) * np.float32(self.length)
        c, s = np.float32(math.cos(math.radians(self.angle))), np.float32(
            math.sin(math.radians(self.angle)))
        total = np.zeros(np.broadcast_shapes(dx.shape, dy.shape), dtype=np.float32)
        for ti in t:
            total += self.psf.evaluate(dx - ti * c, dy - ti * s)
        return total / np.float32(n)

    def radius(self, flux, threshold):
        # The smear spreads the peak over ~length / fwhm positions; keep the still
        # PSF's radius, which errs on the generous side.
        return self.psf.radius(flux, threshold)

    def footprint(self, radius):
        return capsule_footprint(int(radius), float(self.length), float(self.angle))


@dataclass(frozen=True)
class Streak(PSF):
    """A line segment with a Gaussian cross-section: slewed stars, satellite trails.

    Parameters
    ----------
    length : float
        Length of the segment (px, >= 1); the source position is its middle.
    angle : float
        Direction (degrees from +x towards +y).
    fwhm : float
        Full width at half maximum of the cross-section (px).

    Along the segment the brightness is uniform with Gaussian-rounded ends; the value is the
    analytic convolution of the segment with the Gaussian, pixel-integrated to first order
    (variance + 1/12 px^2). A unit-flux streak peaks at ``1 / (length sqrt(2 pi) sigma)``.
    """

    length: float
    angle: float
    fwhm: float

    def __post_init__(self):
        if self.length < 1:
            raise ValueError(f"Streak length must be >= 1 px, got {self.length}")

    @property
    def sigma(self) -> float:
        """Pixel-integrated cross-section sigma (px)."""
        return math.sqrt((self.fwhm / FWHM_PER_SIGMA) ** 2 + 1 / 12)

    def evaluate(self, dx, dy):
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        dx = np.asarray(dx, np.float32)
        dy = np.asarray(dy, np.float32)
        inv = np.float32(1 / self.sigma)
        u = (dx * np.float32(c) + dy * np.float32(s)) * inv
        v = (dy * np.float32(c) - dx * np.float32(s)) * inv
        half = np.float32(0.5 * self.length) * inv
        along = ndtr(u + half) - ndtr(u - half)
        norm = np.float32(1 / (self.length * math.sqrt(2 * np.pi) * self.sigma))
        return (along * np.exp(np.float32(-0.5) * v * v) * norm).astype(np.float32)

    def radius(self, flux, threshold):
        peak = np.asarray(flux, float) / (self.length * math.sqrt(2 * np.pi) * self.sigma)
        ratio = np.maximum(peak / threshold, 1.0)
        return _as_radius(self.sigma * np.sqrt(2 * np.log(ratio)), 2 * self.sigma + 1)

    def footprint(self, radius):
        return capsule_footprint(int(radius), float(self.length), float(self.angle))
