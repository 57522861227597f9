"""Sky light: level and gradient, vignetting, glow from a bright source, drifting clouds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri


def _axes(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates (px), float32, shapes ``(ny, 1)`` and ``(1, nx)``."""
    ny, nx = shape
    return (np.arange(ny, dtype=np.float32)[:, None], np.arange(nx, dtype=np.float32)[None, :])


def sky_background(shape: tuple[int, int], level: float, *, gradient: float = 0.0,
                   angle: float = 0.0) -> np.ndarray:
    """Sky level with a linear gradient.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` (px).
    level : float
        Mean sky (e- per pixel per exposure).
    gradient : float
        Peak-to-peak change across the frame as a fraction of ``level`` (0.2 = +-10 %).
    angle : float
        Direction in which the sky brightens (degrees from +x towards +y).

    Returns
    -------
    numpy.ndarray
        float32 map (e-/px), shape ``shape``, mean ``level``, never negative.
    """
    yy, xx = _axes(shape)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    ny, nx = shape
    span = abs(c) * max(nx - 1, 1) + abs(s) * max(ny - 1, 1)
    slope = np.float32(level * gradient / span)
    ramp_x = np.float32(level) + (xx - np.float32((nx - 1) / 2)) * (slope * np.float32(c))
    ramp_y = (yy - np.float32((ny - 1) / 2)) * (slope * np.float32(s))
    sky = ramp_y + ramp_x
    return np.maximum(sky, 0, out=sky)


def vignetting(shape: tuple[int, int], strength: float, *,
               center: tuple[float, float] | None = None) -> np.ndarray:
    """Radial cos^4-law falloff of the optics' throughput.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` (px).
    strength : float
        Light lost in the corner farthest from ``center``: the map is 1 at the centre and
        ``1 - strength`` there (0 <= strength < 1).
    center : (float, float), optional
        Optical axis ``(x, y)`` (px); default the frame centre.

    Returns
    -------
    numpy.ndarray
        float32 multiplicative map, shape ``shape``: ``(1 + r^2 / f^2)^-2``.
    """
    ny, nx = shape
    cx, cy = center if center is not None else ((nx - 1) / 2, (ny - 1) / 2)
    r2_max = max(cx, nx - 1 - cx) ** 2 + max(cy, ny - 1 - cy) ** 2
    if strength <= 0 or r2_max == 0:
        return np.ones(shape, dtype=np.float32)
    inv_f2 = np.float32((1 / math.sqrt(1 - strength) - 1) / r2_max)
    yy, xx = _axes(shape)
    v = np.square(yy - np.float32(cy)) * inv_f2 + (np.square(xx - np.float32(cx)) * inv_f2 + 1)
    np.square(v, out=v)
    return np.reciprocal(v, out=v)


def glow(shape: tuple[int, int], amplitude: float, x0: float, y0: float,
         scale: float) -> np.ndarray:
    """Scattered light from a bright source such as the Moon, possibly off the frame.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` (px).
    amplitude : float
        Brightness at the source position (e-/px).
    x0, y0 : float
        Source position (px), usually outside the frame.
    scale : float
        Distance (px) at which the glow falls to half ``amplitude``.

    Returns
    -------
    numpy.ndarray
        float32 map ``amplitude / (1 + r^2 / scale^2)`` (e-/px).
    """
    yy, xx = _axes(shape)
    r2 = (xx - np.float32(x0)) ** 2 + (yy - np.float32(y0)) ** 2
    return np.float32(amplitude) / (1 + r2 / np.float32(scale**2))


@dataclass(frozen=True)
class CloudScreen:
    """A patchy cloud layer that can drift across consecutive frames.

    Parameters
    ----------
    scale : float
        Size of the largest cloud structures (px).
    coverage : float
        Fraction of the sky behind cloud (0..1).
    softness : float
        Width of the cloud edges, in standard deviations of the underlying field
        (small: hard-edged clumps; large: thin, diffuse veils).
    seed : int
        Seed of the screen: the same seed gives the same clouds.
    period : float, optional
        Size of the periodic screen (px); default ``max(ny, nx, 4 * scale)`` of the frame.

    Notes
    -----
    A Gaussian random field with power spectrum ``(1 + (k scale)^2)^-1.75`` (smooth on
    large scales, fractal edges), tapered above half the grid's Nyquist frequency, is
    synthesised by FFT on a periodic grid of at most
    2048^2 nodes spaced <= scale / 16, shifted by an exact Fourier phase ramp, interpolated
    (bilinear) onto the frame and pushed through a normal CDF to ``cover`` in 0..1.
    """

    scale: float = 200.0
    coverage: float = 0.5
    softness: float = 0.4
    seed: int = 0
    period: float | None = None

    def cover(self, shape: tuple[int, int], shift: tuple[float, float] = (0.0, 0.0)
              ) -> np.ndarray:
        """Cloud amount in 0..1 (float32, shape ``shape``), screen moved by ``shift`` (x, y) px."""
        period = self.period or max(*shape, 4 * self.scale)
        m = int(min(2048, 2 ** math.ceil(math.log2(max(64, 16 * period / self.scale)))))
        field = _upsample_periodic(self._field(m, period, shift), shape, period / m)
        g0 = ndtri(1 - self.coverage) if 0 < self.coverage < 1 else math.copysign(
            1e3, 0.5 - self.coverage)
        field -= np.float32(g0)
        field *= np.float32(1 / self.softness)
        return ndtr(field, out=field)

    def transmission(self, shape: tuple[int, int], depth: float,
                     shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Fraction of light let through, ``1 - depth * cover`` (float32, 0..1)."""
        return 1 - np.float32(depth) * self.cover(shape, shift)

    def emission(self, shape: tuple[int, int], level: float,
                 shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Light the clouds scatter into the beam, ``level * cover`` (e-/px, float32)."""
        return np.float32(level) * self.cover(shape, shift)

    def _field(self, m: int, period: float, shift: tuple[float, float]) -> np.ndarray:
        """Unit-variance periodic random field on an ``(m, m)`` grid, shifted by ``shift`` px."""
        noise = np.random.default_rng(self.seed).standard_normal((m, m))
        ky = np.fft.fftfreq(m, d=period / m)[:, None]
        kx = np.fft.rfftfreq(m, d=period / m)[None, :]
        k2 = kx**2 + ky**2
        # taper at half the Nyquist frequency: smooth at the node spacing, so that
        # bilinear interpolation is accurate and sub-node shifts are exact
        power = (1 + k2 * self.scale**2) ** -1.75 * np.exp(-k2 * (2 * period / m) ** 2 * 4)
        phase = np.exp(-2j * np.pi * (kx * shift[0] + ky * shift[1]))
        field = np.fft.irfft2(np.fft.rfft2(noise) * np.sqrt(power) * phase, s=(m, m))
        return ((field - field.mean()) / field.std()).astype(np.float32)


def _upsample_periodic(low: np.ndarray, shape: tuple[int, int], spacing: float) -> np.ndarray:
    """Bilinear interpolation of a periodic grid (node spacing ``spacing`` px) onto ``shape``."""
    rows = _lerp_axis(low, shape[0], spacing, axis=0)
    return _lerp_axis(rows, shape[1], spacing, axis=1)


def _lerp_axis(grid: np.ndarray, n: int, spacing: float, axis: int) -> np.ndarray:
    """Resample one periodic axis of ``grid`` at ``n`` pixel centres."""
    pos = np.arange(n, dtype=np.float64) / spacing
    i0 = np.floor(pos).astype(np.int64)
    w = (pos - i0).astype(np.float32)
    size = grid.shape[axis]
    a = np.take(grid, i0 % size, axis=axis)
    b = np.take(grid, (i0 + 1) % size, axis=axis)
    w = w[:, None] if axis == 0 else w[None, :]
    return a + (b - a) * w
