"""Tiled inference: run a network over an image of any size in overlapping tiles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start indices of tiles of ``tile`` px with at least ``overlap`` px shared, covering
    ``0..length`` exactly (the last tile is flush with the end)."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def tiled_apply(image: np.ndarray, func: Callable[[np.ndarray], np.ndarray], *, tile: int,
                overlap: int, batch: int = 4, multiple: int = 1) -> np.ndarray:
    """Apply ``func`` to overlapping tiles of a 2-D image and stitch the central parts.

    Each output pixel comes from the tile in which it lies farthest from a cut edge
    (the image's own edges are not cuts), so no tile border shows in the result.

    Parameters
    ----------
    image : numpy.ndarray
        Input, shape ``(C, H, W)`` (channels first).
    func : callable
        ``func(tiles) -> outputs``: tiles ``(N, C, h, w)`` float32 in, outputs
        ``(N, K, h, w)`` out.
    tile : int
        Tile side (px); an image smaller than a tile is one tile of its own size.
    overlap : int
        Overlap between neighbouring tiles (px); half of it is discarded from each side.
    batch : int
        Tiles per call of ``func``.
    multiple : int
        The image is reflect-padded to a multiple of this (e.g. ``2**depth`` of a U-Net);
        ``tile`` must be a multiple of it too.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(K, H, W)``.
    """
    _, height, width = image.shape
    padded = _pad_to(image, multiple)
    th, tw = min(tile, padded.shape[1]), min(tile, padded.shape[2])
    boxes = [(y, x) for y in tile_starts(padded.shape[1], th, overlap)
             for x in tile_starts(padded.shape[2], tw, overlap)]
    out = None
    for first in range(0, len(boxes), batch):
        chunk = boxes[first:first + batch]
        tiles = np.stack([padded[:, y:y + th, x:x + tw] for y, x in chunk]).astype(np.float32)
        result = func(tiles)
        if out is None:
            out = np.zeros((result.shape[1], *padded.shape[1:]), dtype=np.float32)
        for (y, x), res in zip(chunk, result, strict=True):
            ys = _keep(y, th, padded.shape[1], overlap)
            xs = _keep(x, tw, padded.shape[2], overlap)
            out[:, y + ys.start:y + ys.stop, x + xs.start:x + xs.stop] = res[:, ys, xs]
    return out[:, :height, :width]


def _keep(start: int, size: int, length: int, overlap: int) -> slice:
    """Part of a tile kept in the mosaic: drop half the overlap on sides that are cuts."""
    lo = 0 if start == 0 else overlap // 2
    hi = size if start + size >= length else size - overlap // 2
    return slice(lo, hi)


def _pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad the bottom and right so that both sides are multiples of ``multiple``."""
    _, h, w = image.shape
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return image
    mode = "reflect" if ph < h and pw < w else "symmetric"
    return np.pad(image, ((0, 0), (0, ph), (0, pw)), mode=mode)
