"""Frames as PNG images for the browser, and what preview detected in them, cached on disk.

A rendered image is stored in ``RESULT_DIR/.cache/dashboard/`` under a name derived from
the frame file's absolute path, its modification time and size, the stretch and the
image size, so an unchanged frame is read and rendered once, and a changed file is
rendered afresh. The overlays of a frame (streaks and blobs) are cached the same way, as
JSON, keyed by the skytriage version as well.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from astropy.visualization import (
    AsinhStretch,
    AsymmetricPercentileInterval,
    ImageNormalize,
    LinearStretch,
    ZScaleInterval,
)
from PIL import Image

from skytriage.io import atomic_path, read_frame, read_header, write_json

STRETCHES = ("zscale", "asinh")
THUMBNAIL_SIZE = 160
FRAME_SIZE = 2048
MIN_SIZE, MAX_SIZE = 16, 4096


def block_average(data: np.ndarray, max_side: int) -> np.ndarray:
    """Average ``factor × factor`` blocks so that the longest side is at most ``max_side``.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        Pixels (any numeric dtype).
    max_side : int
        Longest side of the result in pixels.

    Returns
    -------
    ndarray of float32, shape (ny // factor, nx // factor)
        ``factor = ceil(max(ny, nx) / max_side)``; edge rows and columns that do not fill
        a block are dropped.
    """
    factor = max(1, int(np.ceil(max(data.shape) / max_side)))
    ny, nx = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
    blocks = data[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    # float32 accumulation in chunks: no float copy of a 61-Mpix frame
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def stretch_image(data: np.ndarray, stretch: str) -> np.ndarray:
    """Map pixel values to 0..255 for display.

    Parameters
    ----------
    data : ndarray, shape (ny, nx)
        Pixels in ADU.
    stretch : {"zscale", "asinh"}
        ``zscale``: linear between IRAF's zscale limits (the sky and its noise).
        ``asinh``: asinh from the 1st to the 99.95th percentile, showing faint sky and
        bright star cores at once.

    Returns
    -------
    ndarray of uint8, same shape
    """
    if stretch == "zscale":
        norm = ImageNormalize(data, interval=ZScaleInterval(), stretch=LinearStretch(),
                              clip=True)
    elif stretch == "asinh":
        norm = ImageNormalize(data, interval=AsymmetricPercentileInterval(1.0, 99.95),
                              stretch=AsinhStretch(0.02), clip=True)
    else:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch!r}")
    scaled = np.nan_to_num(np.asarray(norm(data), dtype=np.float32), nan=0.0)
    return np.round(scaled * 255).astype(np.uint8)


def render_png(data: np.ndarray, stretch: str, size: int) -> bytes:
    """A grayscale PNG of a frame, at most ``size`` px on its longest side, y axis up.

    Row 0 of the frame is the bottom row of the picture (FITS display convention), so that
    a pixel ``(x, y)`` sits where a plot with y increasing upwards puts it.
    """
    pixels = stretch_image(block_average(data, size), stretch)[::-1]
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def cache_key(file: Path, *what: object) -> str:
    """Name of a cache entry: hash of the file's absolute path, mtime, size, and ``what``."""
    stat = file.stat()
    text = "|".join(map(str, (file.resolve(), stat.st_mtime_ns, stat.st_size, *what)))
    return hashlib.sha1(text.encode()).hexdigest()


def cached_png(file: Path, stretch: str, size: int, cache_dir: Path) -> tuple[Path, bool]:
    """The PNG of a frame file from the cache, rendering and storing it on a miss.

    Parameters
    ----------
    file : Path
        FITS frame.
    stretch : {"zscale", "asinh"}
    size : int
        Longest side in pixels.
    cache_dir : Path
        Cache folder (created when missing).

    Returns
    -------
    (Path, bool)
        The cached PNG and whether it was already there.

    Raises
    ------
    OSError
        When the file is missing.
    SkytriageInputError
        When it cannot be read as a frame.
    """
    target = cache_dir / f"{cache_key(file, stretch, size)}.png"
    if target.exists():
        return target, True
    png = render_png(read_frame(file, dtype=None).data, stretch, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(png)
    return target, False


def frame_shape(file: Path) -> tuple[int, int]:
    """``(ny, nx)`` of a frame file from its header, without reading pixels."""
    header = read_header(file)
    return int(header["NAXIS2"]), int(header["NAXIS1"])


def cached_overlays(file: Path, cache_dir: Path) -> dict:
    """Streaks and blobs of a frame file (``skytriage.preview.overlays``), cached as JSON.

    Returns
    -------
    dict
        ``shape`` ([ny, nx]), ``streaks`` (list of [x0, y0, x1, y1]), ``blobs`` (list of
        [x, y, fwhm, ellipticity, theta_deg]); pixels, 0-based, x = column.

    Raises
    ------
    OSError
        When the file is missing.
    SkytriageInputError
        When it cannot be read as a frame.
    """
    from skytriage.preview import overlays
    from skytriage.preview.features import FEATURE_VERSION

    target = cache_dir / f"{cache_key(file, 'overlays', FEATURE_VERSION)}.json"
    if target.exists():
        return json.loads(target.read_text(encoding="utf-8"))
    found = overlays(file)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_json(target, found)
    return found
