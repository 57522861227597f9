"""Read FITS images, cubes and ramps into :class:`Frame` objects, with one error for bad input.

Every reader opens the file through :func:`astropy_errors`, which turns astropy's
exceptions (OSError, ValueError, TypeError, EOFError, VerifyError, ...) and its warnings
about a damaged file (truncation, invalid header structure) into
:class:`~skytriage.errors.SkytriageInputError` with the file name and a one-line cause.
Uncompressed images are decoded from the raw bytes (:mod:`skytriage.io.bzero`); gzipped,
tile-compressed (``.fits.fz``) and otherwise scaled images go through astropy.
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError, VerifyWarning
from astropy.utils.exceptions import AstropyWarning

from skytriage.errors import SkytriageInputError
from skytriage.io.bzero import raw_layout, read_raw_image
from skytriage.io.header import FrameMeta, date_obs_from_header, read_meta

HduKey = int | str | tuple[str, int]
Nonfinite = Literal["raise", "keep"]

_ASTROPY_ERRORS = (OSError, ValueError, TypeError, EOFError, IndexError, KeyError, zlib.error,
                   VerifyError)
_TRUNCATED = re.compile(r"actual file length \((\d+)\) is smaller than the expected size \((\d+)\)")
_GZIP_MAGIC = b"\x1f\x8b"
_FITS_MAGIC = b"SIMPLE  ="
_BLOCK = 2880
_ZERO_PROBE = 4096

# kind -> (number of axes after conforming, description used in errors)
_LAYOUTS = {
    "image": (2, "a 2-D image"),
    "cube": (3, "a 3-D cube (t, y, x)"),
    "ramp": (4, "a 3-D (groups, y, x) or 4-D (ints, groups, y, x) ramp"),
}


@dataclass
class Frame:
    """Pixels of one FITS image, cube or ramp with their header and metadata.

    Attributes
    ----------
    data : numpy.ndarray
        Pixels in ADU, native byte order: ``(y, x)`` for an image, ``(t, y, x)`` for a
        cube, ``(ints, groups, y, x)`` for a ramp.
    header : astropy.io.fits.Header
        Header of the HDU the data came from.
    path : str
        The file, as given.
    meta : FrameMeta
        Gain, read noise, exposure time, date and unit.
    hdu : int
        Index of the HDU the data came from (0 = primary).
    """

    data: np.ndarray
    header: fits.Header
    path: str
    meta: FrameMeta
    hdu: int


@contextmanager
def astropy_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn astropy's exceptions and damaged-file warnings into ``SkytriageInputError``.

    Parameters
    ----------
    path : str or os.PathLike
        The file being read, named in the error.

    Raises
    ------
    SkytriageInputError
        On any astropy exception inside the block, or when astropy warned that the file
        is truncated or a header's structure is invalid. Other astropy warnings (such
        as a non-standard card astropy can fix) are dropped; warnings from elsewhere
        are re-issued.
    """
    path = os.fspath(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except _ASTROPY_ERRORS as exc:  # SkytriageInputError included: damage explains it
            if isinstance(exc, SkytriageInputError) and not any(map(_is_fatal, caught)):
                raise
            raise SkytriageInputError(path, _failure_cause(path, exc, caught)) from exc
    if any(map(_is_fatal, caught)):
        raise SkytriageInputError(path, _failure_cause(path, None, caught))
    for w in caught:
        if not issubclass(w.category, AstropyWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _is_fatal(caught: warnings.WarningMessage) -> bool:
    """True for astropy warnings that mean the file is damaged (not a fixable card)."""
    message = str(caught.message)
    return "truncated" in message or (issubclass(caught.category, VerifyWarning)
                                      and message.startswith("Error validating header"))


def _failure_cause(path: str, exc: BaseException | None,
                   caught: list[warnings.WarningMessage]) -> str:
    """One line on why a read failed: truncation, then what the file is, then the detail."""
    for w in caught:
        match = _TRUNCATED.search(str(w.message))
        if match:
            return f"truncated file ({match[1]} of {match[2]} bytes)"
    diagnosis = _diagnose_file(path)
    if diagnosis:
        return diagnosis
    fatal = [w for w in caught if _is_fatal(w)]
    detail = str(fatal[0].message) if fatal else getattr(exc, "cause", str(exc))
    if "END card" in detail:
        return "header has no END card (truncated or corrupt)"
    return f"unreadable FITS file ({' '.join(detail.split())})"


def _diagnose_file(path: str) -> str | None:
    """Why ``path`` cannot be a FITS file, judged from its bytes; None if it looks sound."""
    if not os.path.lexists(path):
        return "file not found"
    if os.path.isdir(path):
        return "is a folder, not a FITS file"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(len(_FITS_MAGIC))
    except OSError as exc:
        return f"cannot open the file ({exc.strerror or exc})"
    if size == 0:
        return "empty file (0 bytes)"
    if head.startswith(_GZIP_MAGIC):
        return _diagnose_gzip(path)
    if not head.startswith(_FITS_MAGIC):
        return "not a FITS file (no SIMPLE card at the start)"
    if size % _BLOCK:
        return f"truncated file ({size} bytes, not a multiple of {_BLOCK})"
    return None


def _diagnose_gzip(path: str) -> str | None:
    """Why a gzip file cannot hold FITS (truncated, corrupt, other content); None if sound."""
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(len(_FITS_MAGIC))
            while f.read(1 << 20):
                pass
    except EOFError:
        return "truncated gzip file"
    except (OSError, zlib.error) as exc:
        return f"corrupt gzip file ({exc})"
    if not head.startswith(_FITS_MAGIC):
        return "not a FITS file (gzip without a SIMPLE card at the start)"
    return None


def _has_image_data(hdu: fits.PrimaryHDU | fits.hdu.base.ExtensionHDU) -> bool:
    """True for an image HDU (plain or tile-compressed) with at least one pixel."""
    return bool(hdu.is_image and hdu.shape and all(n > 0 for n in hdu.shape))


def _first_image(hdul: fits.HDUList) -> int | None:
    """Index of the first image HDU with data, reading headers only; None when there is none."""
    index = 0
    while True:
        try:
            hdu = hdul[index]
        except IndexError:
            return None
        if _has_image_data(hdu):
            return index
        index += 1


def _index_of(hdul: fits.HDUList, hdu: HduKey, path: str) -> int:
    """Non-negative index of the HDU named or numbered ``hdu``; an input error if absent."""
    try:
        index = hdul.index_of(hdu)
        hdul[index]
    except (KeyError, IndexError):
        raise SkytriageInputError(path, f"no HDU {hdu!r} in the file") from None
    return index if index >= 0 else index % len(hdul)


def _select_hdu(hdul: fits.HDUList, hdu: HduKey | None, path: str) -> int:
    """Index of the HDU to read: ``hdu`` when given, else the first image HDU with data."""
    if hdu is None:
        index = _first_image(hdul)
        if index is None:
            raise SkytriageInputError(path, "no image data in any HDU (header only)")
        return index
    index = _index_of(hdul, hdu, path)
    if not _has_image_data(hdul[index]):
        raise SkytriageInputError(path, f"HDU {hdu!r} holds no image data")
    return index


def _conform_shape(shape: tuple[int, ...], kind: str, path: str) -> tuple[int, ...]:
    """``shape`` brought to the axes of ``kind``: leading length-1 axes dropped, a 3-D ramp
    given one integration; else an input error naming the shape found."""
    ndim, description = _LAYOUTS[kind]
    conformed = tuple(shape)
    while len(conformed) > ndim and conformed[0] == 1:
        conformed = conformed[1:]
    if kind == "ramp" and len(conformed) == 3:
        conformed = (1, *conformed)
    if len(conformed) != ndim:
        raise SkytriageInputError(
            path, f"expected {description}, found {len(shape)}-D {tuple(shape)}")
    return conformed


def _is_plain_fits(path: str) -> bool:
    """True when the file starts with a FITS header (not gzip or another wrapper)."""
    with open(path, "rb") as f:
        return f.read(len(_FITS_MAGIC)) == _FITS_MAGIC


def _hdu_data(hdul: fits.HDUList, index: int, path: str, dtype: np.dtype | None) -> np.ndarray:
    """Pixels of HDU ``index`` as a native-byte-order array of ``dtype`` (None: natural)."""
    hdu = hdul[index]
    layout = None
    if not isinstance(hdu, fits.CompImageHDU) and _is_plain_fits(path):
        layout = raw_layout(hdu.header)
    if layout is not None:
        return read_raw_image(path, hdul.fileinfo(index)["datLoc"], hdu.shape, layout, dtype)
    data = hdu.data
    target = data.dtype.newbyteorder("=") if dtype is None else dtype
    return data.astype(target, copy=False)


def _nonfinite_counts(data: np.ndarray) -> tuple[int, int]:
    """Numbers of NaN and of infinite pixels in float ``data``."""
    rows = data.reshape(-1, data.shape[-1])
    with np.errstate(over="ignore", invalid="ignore"):
        row_sums = rows @ np.ones(rows.shape[1], rows.dtype)
    if np.isfinite(row_sums).all():
        return 0, 0  # NaN and inf propagate into the row sums (a fast BLAS pass)
    return int(np.count_nonzero(np.isnan(data))), int(np.count_nonzero(np.isinf(data)))


def _all_zero(data: np.ndarray) -> bool:
    """True when every pixel is 0; a nonzero pixel among the first few ends the check."""
    flat = data.reshape(-1)
    return not flat[:_ZERO_PROBE].any() and not flat.any()


def _check_values(data: np.ndarray, path: str, nonfinite: Nonfinite) -> None:
    """Raise for NaN/inf pixels (when ``nonfinite="raise"``) and for all-zero data."""
    if data.dtype.kind == "f" and nonfinite == "raise":
        n_nan, n_inf = _nonfinite_counts(data)
        if n_nan or n_inf:
            raise SkytriageInputError(
                path, f"{n_nan + n_inf} non-finite pixels ({n_nan} NaN, {n_inf} inf)")
    if _all_zero(data):
        raise SkytriageInputError(path, "all pixels are zero")


def _read(path: str | os.PathLike, kind: str, *, hdu: HduKey | None, dtype, gain, readnoise,
          exptime, nonfinite: Nonfinite) -> Frame:
    """Shared body of :func:`read_frame`, :func:`read_cube` and :func:`read_ramp`."""
    if nonfinite not in ("raise", "keep"):
        raise ValueError(f"nonfinite must be 'raise' or 'keep', not {nonfinite!r}")
    dtype = None if dtype is None else np.dtype(dtype)
    path = os.fspath(path)
    with astropy_errors(path), fits.open(path, memmap=False) as hdul:
        index = _select_hdu(hdul, hdu, path)
        header = hdul[index].header
        shape = _conform_shape(hdul[index].shape, kind, path)
        meta = read_meta(header, path, gain=gain, readnoise=readnoise, exptime=exptime,
                         fallback=hdul[0].header if index else None)
        data = _hdu_data(hdul, index, path, dtype).reshape(shape)
    _check_values(data, path, nonfinite)
    return Frame(data=data, header=header, path=path, meta=meta, hdu=index)


def read_frame(
    path: str | os.PathLike,
    *,
    hdu: HduKey | None = None,
    dtype=np.float32,
    gain: float | None = None,
    readnoise: float | None = None,
    exptime: float | None = None,
    nonfinite: Nonfinite = "raise",
) -> Frame:
    """Read a 2-D image from a FITS file (``.fits``, ``.fit``, ``.fts``, ``.gz``, ``.fz``).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    hdu : int, str or (str, int), optional
        HDU index or name (e.g. ``"SCI"``); by default the primary HDU, or else the first
        image HDU with data.
    dtype : numpy dtype or None, default float32
        Output dtype. None keeps the natural dtype (uint16 for int16 with
        ``BZERO = 32768``), in native byte order.
    gain, readnoise, exptime : float, optional
        Overrides for the header values, in e-/ADU, e- and s.
    nonfinite : {"raise", "keep"}
        What to do with NaN or inf pixels.

    Returns
    -------
    Frame
        ``data`` of shape ``(y, x)``; a ``(1, y, x)`` array is squeezed.

    Raises
    ------
    SkytriageInputError
        Missing, non-FITS, truncated or header-only file; data that is not 2-D;
        NaN/inf pixels (with ``nonfinite="raise"``); all-zero pixels; bad gain.
    """
    return _read(path, "image", hdu=hdu, dtype=dtype, gain=gain, readnoise=readnoise,
                 exptime=exptime, nonfinite=nonfinite)


def read_cube(
    path: str | os.PathLike,
    *,
    hdu: HduKey | None = None,
    dtype=np.float32,
    gain: float | None = None,
    readnoise: float | None = None,
    exptime: float | None = None,
    nonfinite: Nonfinite = "raise",
) -> Frame:
    """Read a time series of frames, shape ``(t, y, x)``, from a FITS file.

    Parameters and errors are those of :func:`read_frame`, except that the data must be
    3-D (leading length-1 axes are dropped).

    Returns
    -------
    Frame
        ``data`` of shape ``(t, y, x)``.
    """
    return _read(path, "cube", hdu=hdu, dtype=dtype, gain=gain, readnoise=readnoise,
                 exptime=exptime, nonfinite=nonfinite)


def read_ramp(
    path: str | os.PathLike,
    *,
    hdu: HduKey | None = None,
    dtype=np.float32,
    gain: float | None = None,
    readnoise: float | None = None,
    exptime: float | None = None,
    nonfinite: Nonfinite = "raise",
) -> Frame:
    """Read an up-the-ramp exposure of an IR detector from a FITS file.

    Parameters and errors are those of :func:`read_frame`, except that the data must be
    ``(groups, y, x)`` or ``(ints, groups, y, x)``. A JWST-style file whose data sit in
    an extension (``SCI``) is read from the first image HDU with data.

    Returns
    -------
    Frame
        ``data`` of shape ``(ints, groups, y, x)``; a 3-D ramp is one integration.
    """
    return _read(path, "ramp", hdu=hdu, dtype=dtype, gain=gain, readnoise=readnoise,
                 exptime=exptime, nonfinite=nonfinite)


def read_header(path: str | os.PathLike, hdu: HduKey | None = None) -> fits.Header:
    """Read one header without reading any pixels.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    hdu : int, str or (str, int), optional
        HDU index or name; by default the HDU :func:`read_frame` would read, or the
        primary header when no HDU holds data.

    Returns
    -------
    astropy.io.fits.Header

    Raises
    ------
    SkytriageInputError
        Missing, non-FITS or damaged file, or no such HDU.
    """
    path = os.fspath(path)
    with astropy_errors(path), fits.open(path, memmap=False) as hdul:
        if hdu is not None:
            return hdul[_index_of(hdul, hdu, path)].header
        index = _first_image(hdul)
        return hdul[index or 0].header


def scan_frame(path: str | os.PathLike) -> str | None:
    """Check from its headers that a file holds FITS image data; return its ``DATE-OBS``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str or None
        ``DATE-OBS`` (joined with ``TIME-OBS``) of the data HDU, else of the primary
        HDU; None when absent or not ISO 8601.

    Raises
    ------
    SkytriageInputError
        Missing, non-FITS, damaged or header-only file.
    """
    path = os.fspath(path)
    with astropy_errors(path), fits.open(path, memmap=False) as hdul:
        index = _select_hdu(hdul, None, path)
        return date_obs_from_header(hdul[index].header) or date_obs_from_header(hdul[0].header)
