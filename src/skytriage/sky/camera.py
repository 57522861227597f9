"""Detector models: expected electrons in, digitised counts out.

``SCMOS`` and ``CCD`` turn an image of expected photo-electrons per exposure into a uint16
frame in ADU; ``H2RG`` turns a flux in e-/s into an up-the-ramp cube of reads in DN.
Fixed patterns (hot pixels, noisy pixels, column offsets, per-pixel bias) come from the
camera's own ``seed``, so they are the same in every frame of a camera; everything that
changes from frame to frame comes from the ``rng`` passed to each call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from skytriage.sky.noise import GAUSSIAN_ABOVE, map_blocks, poisson, poisson_block, row_blocks

ADC_MAX = 65535


def _digitise(electrons: np.ndarray, gain: float, offset, saturation: float) -> np.ndarray:
    """``rint(e / gain + offset)`` clipped to ``0..saturation``, as uint16."""
    adu = electrons * np.float32(1 / gain)
    adu += offset
    np.rint(adu, out=adu)
    np.clip(adu, 0, saturation, out=adu)
    return adu.astype(np.uint16)


class ScmosPattern(NamedTuple):
    """Fixed pattern of one sCMOS sensor (see :meth:`SCMOS.pattern`)."""

    column_offset: np.ndarray  #: float32 ADU per column, shape ``(nx,)``
    hot_index: np.ndarray  #: flat indices of hot pixels, sorted int64
    hot_rate: np.ndarray  #: their dark current (e-/s), float32
    noisy_index: np.ndarray  #: flat indices of noisy pixels, sorted int64
    noisy_extra: np.ndarray  #: extra read noise added in quadrature (e-), float32


@dataclass(frozen=True)
class SCMOS:
    """A scientific CMOS camera.

    Parameters
    ----------
    gain : float
        e- per ADU.
    read_noise : float
        Typical (median) read noise per pixel (e-).
    bias : float
        Mean offset (ADU).
    full_well : float
        Pixel capacity (e-); the output clips at ``min(65535, bias + full_well / gain)``.
    dark_current : float
        Dark current of ordinary pixels (e-/s).
    hot_fraction : float
        Fraction of hot pixels; their dark current is log-uniform in ``hot_rate`` (e-/s).
    hot_rate : (float, float)
        Range of hot-pixel dark currents (e-/s).
    noisy_fraction : float
        Fraction of noisy pixels (the long tail of sCMOS read noise): their read noise is
        ``read_noise * (1.5 + 3 * Lomax(2.5))``, up to tens of times the median.
    row_noise, column_noise : float
        Temporal pattern noise: an offset per row / per column, new in every frame (e- rms).
    column_fpn : float
        Fixed offset per column, the same in every frame (ADU rms).
    seed : int
        Seed of the fixed pattern.
    gaussian_above : float
        Poisson means above this are drawn from a Gaussian (see ``noise.poisson_block``).
    """

    gain: float = 0.8
    read_noise: float = 1.6
    bias: float = 300.0
    full_well: float = 51000.0
    dark_current: float = 0.005
    hot_fraction: float = 2e-4
    hot_rate: tuple[float, float] = (0.5, 200.0)
    noisy_fraction: float = 0.01
    row_noise: float = 0.3
    column_noise: float = 0.15
    column_fpn: float = 1.0
    seed: int = 0
    gaussian_above: float = GAUSSIAN_ABOVE

    @property
    def saturation(self) -> int:
        """Highest output value (ADU)."""
        return int(min(ADC_MAX, round(self.bias + self.full_well / self.gain)))

    def pattern(self, shape: tuple[int, int]) -> ScmosPattern:
        """The sensor's fixed pattern for frames of ``shape`` (cached)."""
        return _scmos_pattern(self, tuple(shape))

    def expose(self, electrons: np.ndarray, rng: np.random.Generator,
               exptime: float) -> np.ndarray:
        """Read out one exposure.

        Parameters
        ----------
        electrons : numpy.ndarray
            Expected photo-electrons per pixel in the exposure, shape ``(ny, nx)``.
        rng : numpy.random.Generator
            Source of the frame's noise.
        exptime : float
            Exposure time (s), for the dark current.

        Returns
        -------
        numpy.ndarray
            uint16 frame (ADU), shape ``(ny, nx)``: Poisson(signal + dark) plus read noise,
            row/column pattern noise, bias and column offsets; pixels whose charge reaches
            the full well read exactly :attr:`saturation`.
        """
        ny, nx = electrons.shape
        pat = self.pattern((ny, nx))
        rows = rng.normal(0, self.row_noise, ny).astype(np.float32)[:, None]
        cols = rng.normal(0, self.column_noise, nx).astype(np.float32)
        offset = (np.float32(self.bias) + pat.column_offset + cols / np.float32(self.gain))
        out = np.empty((ny, nx), dtype=np.uint16)

        def work(block: slice, gen: np.random.Generator) -> None:
            lo, hi = block.start * nx, block.stop * nx
            lam = electrons[block] + np.float32(self.dark_current * exptime)
            k = _sparse_range(pat.hot_index, lo, hi)
            lam.reshape(-1)[pat.hot_index[k] - lo] += pat.hot_rate[k] * np.float32(exptime)
            e = poisson_block(lam, gen, self.gaussian_above)
            full = e >= np.float32(self.full_well)
            e += gen.standard_normal(e.shape, np.float32) * np.float32(self.read_noise)
            k = _sparse_range(pat.noisy_index, lo, hi)
            extra = pat.noisy_extra[k] * gen.standard_normal(k.stop - k.start, np.float32)
            e.reshape(-1)[pat.noisy_index[k] - lo] += extra
            e += rows[block]
            out[block] = _digitise(e, self.gain, offset, self.saturation)
            out[block][full] = self.saturation

        map_blocks(work, row_blocks(ny, nx), rng)
        return out


def _sparse_range(index: np.ndarray, lo: int, hi: int) -> slice:
    """Slice of the sorted flat ``index`` that falls in ``[lo, hi)``."""
    return slice(*np.searchsorted(index, [lo, hi]))


@functools.lru_cache(maxsize=8)
def _scmos_pattern(camera: SCMOS, shape: tuple[int, int]) -> ScmosPattern:
    """Draw an sCMOS fixed pattern from ``camera.seed``."""
    rng = np.random.default_rng(camera.seed)
    npix = shape[0] * shape[1]
    column_offset = rng.normal(0, camera.column_fpn, shape[1]).astype(np.float32)
    hot = np.unique(rng.integers(0, npix, rng.binomial(npix, camera.hot_fraction)))
    lo, hi = np.log(camera.hot_rate)
    hot_rate = np.exp(rng.uniform(lo, hi, hot.size)).astype(np.float32)
    noisy = np.unique(rng.integers(0, npix, rng.binomial(npix, camera.noisy_fraction)))
    sigma = camera.read_noise * (1.5 + 3 * rng.pareto(2.5, noisy.size))
    extra = np.sqrt(sigma**2 - camera.read_noise**2).astype(np.float32)
    return ScmosPattern(column_offset, hot, hot_rate, noisy, extra)


@dataclass(frozen=True)
class CCD:
    """A CCD camera.

    Parameters
    ----------
    gain : float
        e- per ADU.
    read_noise : float
        Read noise (e-), the same for every pixel (one output amplifier).
    bias : float
        Offset (ADU).
    full_well : float
        Pixel capacity (e-); the output clips at ``min(65535, bias + full_well / gain)``.
    dark_current : float
        e-/s per pixel.
    overscan : int
        Columns of overscan appended on the right: bias and read noise, no signal.
    gaussian_above : float
        Poisson means above this are drawn from a Gaussian (see ``noise.poisson_block``).
    """

    gain: float = 1.5
    read_noise: float = 5.0
    bias: float = 1000.0
    full_well: float = 90000.0
    dark_current: float = 0.001
    overscan: int = 0
    gaussian_above: float = GAUSSIAN_ABOVE

    @property
    def saturation(self) -> int:
        """Highest output value (ADU)."""
        return int(min(ADC_MAX, round(self.bias + self.full_well / self.gain)))

    def expose(self, electrons: np.ndarray, rng: np.random.Generator,
               exptime: float) -> np.ndarray:
        """Read out one exposure.

        Parameters
        ----------
        electrons : numpy.ndarray
            Expected photo-electrons per pixel, shape ``(ny, nx)``.
        rng : numpy.random.Generator
            Source of the frame's noise.
        exptime : float
            Exposure time (s), for the dark current.

        Returns
        -------
        numpy.ndarray
            uint16 frame (ADU), shape ``(ny, nx + overscan)``; pixels whose charge reaches
            the full well read exactly :attr:`saturation`.
        """
        ny, nx = electrons.shape
        lam = np.zeros((ny, nx + self.overscan), dtype=np.float32)
        lam[:, :nx] = electrons + np.float32(self.dark_current * exptime)
        e = poisson(lam, rng, gaussian_above=self.gaussian_above)
        full = e >= np.float32(self.full_well)
        e += rng.standard_normal(e.shape, np.float32) * np.float32(self.read_noise)
        out = _digitise(e, self.gain, np.float32(self.bias), self.saturation)
        out[full] = self.saturation
        return out


@dataclass(frozen=True)
class H2RG:
    """A HgCdTe (H2RG-like) infrared array read up the ramp, without destructive reads.

    Parameters
    ----------
    gain : float
        e- per DN.
    read_noise : float
        Noise of every single read (e-).
    bias : float
        Mean pedestal (DN).
    bias_spread : float
        Pixel-to-pixel rms of the pedestal (DN), fixed from ``seed``.
    ktc_noise : float
        Reset (kTC) noise (e-): a new per-pixel offset for every ramp, constant along it.
    full_well : float
        Pixel capacity (e-): the accumulated charge stops there.
    dark_current : float
        e-/s per pixel.
    reference_border : int
        Width of the reference-pixel border on all four sides (px): no charge, same
        pedestal, read noise and bias drifts as the light-sensitive pixels.
    n_outputs : int
        Readout channels, as vertical stripes of columns, each with its own drift.
    drift : float
        Rms step (DN) of each channel's pedestal random walk from group to group.
    seed : int
        Seed of the fixed pedestal.
    """

    gain: float = 2.0
    read_noise: float = 12.0
    bias: float = 12000.0
    bias_spread: float = 600.0
    ktc_noise: float = 30.0
    full_well: float = 90000.0
    dark_current: float = 0.005
    reference_border: int = 4
    n_outputs: int = 4
    drift: float = 2.0
    seed: int = 0

    def accumulate(self, flux: np.ndarray, n_groups: int, frame_time: float,
                   rng: np.random.Generator) -> np.ndarray:
        """Charge collected by every read.

        Parameters
        ----------
        flux : numpy.ndarray
            Photo-current (e-/s), shape ``(ny, nx)`` of the whole array; the reference
            border is ignored.
        n_groups : int
            Number of reads (one frame per group).
        frame_time : float
            Time between reads (s).
        rng : numpy.random.Generator
            Source of the Poisson increments.

        Returns
        -------
        numpy.ndarray
            float32 charge (e-), shape ``(n_groups, ny, nx)``: cumulative sums of Poisson
            increments, one frame time before the first read, clipped at the full well.
        """
        rate = (np.maximum(flux, 0) + self.dark_current) * frame_time
        rate = rate.astype(np.float32) * self.science_mask(flux.shape)
        lam = np.broadcast_to(rate, (n_groups, *rate.shape))
        charge = np.cumsum(poisson(lam, rng), axis=0, dtype=np.float32)
        return np.minimum(charge, np.float32(self.full_well), out=charge)

    def read(self, charge: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Digitise a cube of accumulated charge.

        Parameters
        ----------
        charge : numpy.ndarray
            Charge (e-) at every read, shape ``(n_groups, ny, nx)``.
        rng : numpy.random.Generator
            Source of kTC, read noise and drifts.

        Returns
        -------
        numpy.ndarray
            uint16 reads (DN), shape ``(n_groups, ny, nx)``.
        """
        groups, ny, nx = charge.shape
        inv_gain = np.float32(1 / self.gain)
        pedestal = self.pedestal((ny, nx))
        pedestal = pedestal + rng.normal(0, self.ktc_noise, (ny, nx)).astype(np.float32) * inv_gain
        steps = rng.normal(0, self.drift, (groups, self.n_outputs)).astype(np.float32)
        drift = np.cumsum(steps, axis=0)
        channel = np.minimum(np.arange(nx) * self.n_outputs // nx, self.n_outputs - 1)
        dn = charge * inv_gain + pedestal[None] + drift[:, None, channel]
        dn += rng.standard_normal(dn.shape, np.float32) * (self.read_noise * inv_gain)
        np.rint(dn, out=dn)
        return np.clip(dn, 0, ADC_MAX, out=dn).astype(np.uint16)

    def ramp(self, flux: np.ndarray, n_groups: int, frame_time: float,
             rng: np.random.Generator) -> np.ndarray:
        """``read(accumulate(...))``: uint16 DN, shape ``(n_groups, ny, nx)``."""
        return self.read(self.accumulate(flux, n_groups, frame_time, rng), rng)

    def pedestal(self, shape: tuple[int, int]) -> np.ndarray:
        """Fixed per-pixel pedestal (DN), float32, from ``seed``."""
        rng = np.random.default_rng(self.seed)
        return (self.bias + rng.normal(0, self.bias_spread, shape)).astype(np.float32)

    def science_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """float32 1 on light-sensitive pixels, 0 on the reference border."""
        mask = np.zeros(shape, dtype=np.float32)
        b = self.reference_border
        mask[b:shape[0] - b, b:shape[1] - b] = 1
        return mask
