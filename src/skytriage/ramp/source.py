"""Open an up-the-ramp FITS file once and read it band by band (all groups, a few rows).

An uncompressed file is mapped, not read: a band of rows of one integration costs
``groups x rows x nx`` float32, so a 2048x2048 ramp of any length is processed in bounded
memory. Compressed files and in-memory arrays are held whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from skytriage.errors import SkytriageInputError
from skytriage.io import astropy_errors, raw_layout, read_meta

#: Shortest x or y side that still leaves science pixels inside the reference border (px).
MIN_SCIENCE_SIDE = 4


@dataclass
class RampSource:
    """A ramp ready to be read in bands.

    Attributes
    ----------
    path : str
        The file (or ``"<array>"``).
    shape : (int, int, int, int)
        ``(ints, groups, ny, nx)``.
    gain : float
        e- per DN (header ``GAIN``; 1 when absent).
    read_noise : float or None
        e- per read (header ``RDNOISE``); None when absent (then measured from the data).
    saturation : float
        Absolute DN at which reads are saturated (header ``SATURATE``; default 65535).
    header : astropy.io.fits.Header
    """

    path: str
    shape: tuple[int, int, int, int]
    gain: float
    read_noise: float | None
    saturation: float
    header: fits.Header
    _array: np.ndarray | None = None
    _memmap: np.ndarray | None = None
    _bzero: float = 0.0

    def band(self, integration: int, y0: int, y1: int) -> np.ndarray:
        """Reads of rows ``y0:y1`` of one integration: float32 DN, ``(groups, rows, nx)``."""
        source = self._array if self._array is not None else self._memmap
        out = np.asarray(source[integration, :, y0:y1, :], dtype=np.float32)
        if self._bzero:
            out += np.float32(self._bzero)
        return out

    def rows(self, integration: int, index: np.ndarray) -> np.ndarray:
        """Reads of the listed rows of one integration: float32 DN ``(groups, len, nx)``."""
        source = self._array if self._array is not None else self._memmap
        out = np.asarray(source[integration][:, index, :], dtype=np.float32)
        if self._bzero:
            out += np.float32(self._bzero)
        return out


def _conform(shape: tuple[int, ...], path: str) -> tuple[int, int, int, int]:
    """``(ints, groups, ny, nx)`` from a 3-D or 4-D shape, or an input error saying why not."""
    dims = tuple(int(n) for n in shape)
    while len(dims) > 4 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) == 3:
        dims = (1, *dims)
    if len(dims) != 4:
        raise SkytriageInputError(path, f"expected a 3-D (groups, y, x) or 4-D "
                                        f"(ints, groups, y, x) ramp, found {len(shape)}-D "
                                        f"{tuple(shape)}")
    ints, groups, ny, nx = dims
    if nx < 16 and groups > 4 * nx and ny > 4 * nx:
        raise SkytriageInputError(path, f"shape {tuple(shape)} looks like (y, x, groups): "
                                        f"the ramp must be (groups, y, x) in numpy order "
                                        f"(NAXIS1 = x)")
    return ints, groups, ny, nx


def _check_size(shape: tuple[int, int, int, int], refpix: int, path: str) -> None:
    ints, groups, ny, nx = shape
    if ints * (groups - 1) < 3 or groups < 2:
        raise SkytriageInputError(path, f"{groups} group(s) x {ints} integration(s): jump "
                                        f"detection needs at least 3 groups (or 2 groups "
                                        f"in at least 3 integrations)")
    if min(ny, nx) < 2 * refpix + MIN_SCIENCE_SIDE:
        raise SkytriageInputError(path, f"{ny}x{nx} px leaves no science pixels inside a "
                                        f"{refpix}-px reference border (--refpix)")


def open_ramp(path: str | os.PathLike, *, refpix: int = 4, gain: float | None = None,
              read_noise: float | None = None, saturation: float | None = None) -> RampSource:
    """Open a ramp FITS file (primary HDU, or the first image HDU with data, e.g. ``SCI``).

    Parameters
    ----------
    path : path-like
        The file: 3-D ``(groups, y, x)`` or 4-D ``(ints, groups, y, x)``, integer or
        float DN.
    refpix : int
        Width of the reference-pixel border (px); 0 for none.
    gain, read_noise, saturation : float, optional
        Overrides of the header's ``GAIN`` (e-/DN), ``RDNOISE`` (e- per read) and
        ``SATURATE`` (DN).

    Raises
    ------
    SkytriageInputError
        Unreadable file, not 3-D/4-D, axes that look swapped, fewer than 3 groups, too
        small for the reference border, bad header values.
    """
    path = os.fspath(path)
    with astropy_errors(path), fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        index = next((i for i, hdu in enumerate(hdul)
                      if hdu.is_image and hdu.shape and all(n > 0 for n in hdu.shape)), None)
        if index is None:
            raise SkytriageInputError(path, "no image data in any HDU (header only)")
        hdu = hdul[index]
        header = hdu.header.copy()
        shape = _conform(hdu.shape, path)
        _check_size(shape, refpix, path)
        meta = read_meta(header, path, gain=gain, readnoise=read_noise,
                         fallback=hdul[0].header if index else None)
        layout = None if isinstance(hdu, fits.CompImageHDU) else raw_layout(header)
        plain = not _is_gzip(path)
        offset = hdul.fileinfo(index)["datLoc"]
        array = None if (layout is not None and plain) else np.asarray(hdu.data).reshape(shape)
    sat = saturation if saturation is not None else header.get("SATURATE", 65535.0)
    source = RampSource(path, shape, meta.gain, meta.readnoise, float(sat), header, array)
    if array is None:
        needed = offset + int(np.prod(shape)) * layout.stored.itemsize
        if os.path.getsize(path) < needed:
            raise SkytriageInputError(path, f"truncated file ({os.path.getsize(path)} of "
                                            f"{needed} bytes)")
        source._memmap = np.memmap(path, dtype=layout.stored, mode="r", offset=offset,
                                   shape=shape)
        source._bzero = float(layout.bzero)
    return source


def ramp_from_array(data: np.ndarray, *, gain: float = 1.0, read_noise: float | None = None,
                    saturation: float = 65535.0, refpix: int = 4) -> RampSource:
    """Wrap an in-memory ramp (DN, 3-D or 4-D) as a :class:`RampSource`."""
    shape = _conform(np.shape(data), "<array>")
    _check_size(shape, refpix, "<array>")
    return RampSource("<array>", shape, float(gain), read_noise, float(saturation),
                      fits.Header(), np.asarray(data).reshape(shape))


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"
