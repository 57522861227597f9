"""Fast reads of uncompressed FITS images straight from the file bytes.

Cameras write unsigned 16-bit pixels as ``BITPIX = 16`` with ``BZERO = 32768`` and
``BSCALE = 1``: the stored big-endian int16 value plus 32768 is the pixel. astropy refuses
to memory-map such images and its scaled read goes through a slower path, so for an
uncompressed file this module maps the raw bytes and decodes them itself. Adding 32768 to
an int16 is the same as flipping its sign bit, so the decode is one XOR, done by numpy
while it swaps the bytes to native order. The same holds for uint32 and uint64
(``BZERO = 2**31``, ``2**63``). Unscaled images (no ``BZERO``/``BSCALE``) are read the
same way with a plain byte-order cast. Anything else (other scaling, ``BLANK``,
compression) is left to astropy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from skytriage.errors import SkytriageInputError

_BITPIX_CODES = {8: "u1", 16: "i2", 32: "i4", 64: "i8", -32: "f4", -64: "f8"}


@dataclass(frozen=True)
class RawLayout:
    """How an image's pixels lie in the file and what they decode to.

    Attributes
    ----------
    stored : numpy.dtype
        The big-endian dtype of the bytes in the file.
    natural : numpy.dtype
        The native dtype astropy returns for these pixels (``uint16`` for int16 with
        ``BZERO = 32768``).
    unsigned : bool
        True when the pixels are unsigned integers stored with a ``BZERO`` offset.
    """

    stored: np.dtype
    natural: np.dtype
    unsigned: bool

    @property
    def bzero(self) -> int:
        """The offset added to the stored value: ``2**(bits - 1)`` when unsigned, else 0."""
        return 1 << (8 * self.stored.itemsize - 1) if self.unsigned else 0


def raw_layout(header: Mapping[str, Any]) -> RawLayout | None:
    """The layout of an image that can be decoded from its raw bytes, else None.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
        Header of an uncompressed image HDU.

    Returns
    -------
    RawLayout or None
        None when the image is scaled in any other way (``BSCALE != 1``, another
        ``BZERO``) or declares ``BLANK``: astropy must read those.
    """
    code = _BITPIX_CODES.get(header.get("BITPIX"))
    if code is None or "BLANK" in header or header.get("BSCALE", 1) != 1:
        return None
    stored = np.dtype(">" + code)
    bzero = header.get("BZERO", 0)
    if bzero == 0:
        return RawLayout(stored, stored.newbyteorder("="), unsigned=False)
    if stored.kind == "i" and bzero == 1 << (8 * stored.itemsize - 1):
        return RawLayout(stored, np.dtype(f"=u{stored.itemsize}"), unsigned=True)
    return None


def _decode(raw: np.ndarray, layout: RawLayout, target: np.dtype) -> np.ndarray:
    """Decode big-endian stored pixels to a new native array of dtype ``target``."""
    out = np.empty(raw.shape, target)
    if not layout.unsigned:
        np.copyto(out, raw, casting="unsafe")
    elif target == layout.natural:
        sign_bit = layout.natural.type(layout.bzero)
        np.bitwise_xor(raw.view(f">u{layout.stored.itemsize}"), sign_bit, out=out)
    elif target.kind == "f" and layout.stored.itemsize == 2:
        np.add(raw, target.type(layout.bzero), out=out)  # exact in float32 and float64
    else:
        np.copyto(out, _decode(raw, layout, layout.natural), casting="unsafe")
    return out


def read_raw_image(
    path: str | os.PathLike,
    offset: int,
    shape: tuple[int, ...],
    layout: RawLayout,
    dtype: np.dtype | type | str | None = None,
) -> np.ndarray:
    """Read an uncompressed image by mapping its bytes and decoding them with numpy.

    Parameters
    ----------
    path : str or os.PathLike
        An uncompressed (not gzipped) FITS file.
    offset : int
        Byte offset of the data in the file (astropy's ``fileinfo(i)["datLoc"]``).
    shape : tuple of int
        Array shape in numpy order, e.g. ``(NAXIS2, NAXIS1)``.
    layout : RawLayout
        From :func:`raw_layout` on the HDU's header.
    dtype : numpy dtype, optional
        Output dtype; None keeps ``layout.natural`` (e.g. uint16).

    Returns
    -------
    numpy.ndarray
        A new native-byte-order array of ``shape``, equal to astropy's scaled read
        (cast to ``dtype`` when given).

    Raises
    ------
    SkytriageInputError
        When the file ends before the last pixel (a truncated file).
    """
    needed = offset + prod(shape) * layout.stored.itemsize
    size = os.path.getsize(path)
    if size < needed:
        raise SkytriageInputError(path, f"truncated file ({size} of {needed} bytes)")
    target = layout.natural if dtype is None else np.dtype(dtype)
    raw = np.memmap(path, dtype=layout.stored, mode="r", offset=offset, shape=shape)
    return _decode(raw, layout, target)
