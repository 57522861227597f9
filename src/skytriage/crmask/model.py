"""The learned side of crmask: a small U-Net that masks cosmic rays and one that inpaints them.

Both see the image through the noise model, so they work at any gain, sky level and
unit: channel 0 is the significance above the background, channel 1 the same after a
5×5 median (the local star profile without thin features), channel 2 the share of
background noise in each pixel's noise (1 on sky, → 0 on bright stars). Significances are
compressed with ``asinh(z / 3)`` so that faint hits and saturated-looking cores fit one
scale. Inference runs in overlapping tiles (float32, channels-last, all cores) and keeps
only the centre of each tile, so neither tile borders nor image edges leave artefacts.

A second, wider network of the same kind (the star-region network, ``--star-net``) is
trained only on pixels of stars and galaxies (:func:`star_region`) and decides there; it
runs only on the blocks of the image that hold such pixels, or on the whole image in
half-size tiles when those blocks cover most of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage

from skytriage.crmask.detect import NoiseModel
from skytriage.nn import UNet, configure_torch, load_checkpoint, save_checkpoint, tiled_apply

SOFTEN = 3.0
"""Significances enter the networks as ``asinh(z / SOFTEN)``."""

TILE = 1024
OVERLAP = 48
BLOCK = 128
"""Side (px) of the blocks the star-region network decides on."""
HALO = 48
"""Context (px) it sees around each block: beyond 48 px the network's output no longer
changes (tests/test_crmask_pipeline.py)."""
STAR_REGION_SIGMA = 5.0
"""Star regions: where the 5×5 median stands this many background rms above the
background, grown by :data:`STAR_REGION_GROW` px."""
STAR_REGION_GROW = 2
LONGEST_SOURCE = 40.0
"""Star-region pieces longer than this (px, 4 × the rms extent along the major axis) ...
"""
MOST_ELONGATED_SOURCE = 3.5
"""... and more elongated than this (major / minor rms extent) are not stars or galaxies
(the simulated galaxies' axis ratios stop at 3.3): sky lines, bad rows and columns,
vignetted edges. The star-region network never saw such features, so they stay with
the U-Net."""


def star_region(channels: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """Pixels of stars and galaxies, bool ``(ny, nx)``, from :func:`network_inputs`'
    channels: channel 1 above :data:`STAR_REGION_SIGMA`, grown, less ``ignore``
    (saturated and bad pixels) and less long thin pieces (:func:`_long_thin_pieces`)."""
    region = channels[1] > np.float32(np.arcsinh(STAR_REGION_SIGMA / SOFTEN))
    region = ndimage.binary_dilation(region, iterations=STAR_REGION_GROW)
    if ignore is None:
        ignore = np.zeros_like(region)
    region &= ~ignore
    return region & ~_long_thin_pieces(region, ignore)


def _long_thin_pieces(region: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """bool ``(ny, nx)``: the connected pieces of ``region`` longer than
    :data:`LONGEST_SOURCE` and more elongated than :data:`MOST_ELONGATED_SOURCE`
    (second moments of their pixel positions), unless they touch ``ignore``: the sides
    of a bleed trail belong to its star."""
    labels, _ = ndimage.label(region)
    out = np.zeros_like(region)
    ny, nx = region.shape
    for number, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        if max(rows.stop - rows.start, cols.stop - cols.start) <= LONGEST_SOURCE:
            continue
        piece = labels[rows, cols] == number
        spread = np.cov(np.nonzero(piece))
        minor, major = np.sqrt(np.clip(np.linalg.eigvalsh(spread), 1e-6, None))
        if 4 * major <= LONGEST_SOURCE or major / minor <= MOST_ELONGATED_SOURCE:
            continue
        around = (slice(max(rows.start - 1, 0), min(rows.stop + 1, ny)),
                  slice(max(cols.start - 1, 0), min(cols.stop + 1, nx)))
        if not (ndimage.binary_dilation(labels[around] == number) & ignore[around]).any():
            out[rows, cols] |= piece
    return out


def network_inputs(image: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """The three input channels, float32 ``(3, ny, nx)`` (see the module docstring).

    Built in place in the output array: the only temporaries are one median-filtered
    image and one inverse-rms image, so the peak memory stays near 5 image copies.
    """
    image = np.ascontiguousarray(image, np.float32)
    out = np.empty((3, *image.shape), dtype=np.float32)
    inv_rms = np.reciprocal(noise.background_rms)
    inv_rms *= np.float32(1 / SOFTEN)
    for channel, source in ((0, image), (1, cv2.medianBlur(image, 5))):
        np.subtract(source, noise.background, out=out[channel])
        out[channel] *= inv_rms
        np.arcsinh(out[channel], out=out[channel])
    np.divide(noise.background_rms, noise.sigma, out=out[2])
    return out


def _forward(net: torch.nn.Module):
    """``forward(tiles)``: float32 ``(N, C, h, w)`` in, numpy ``(N, K, h, w)`` out."""

    def forward(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(tiles).contiguous(memory_format=torch.channels_last)
        return net(x).float().numpy()

    return forward


def _run_blocks(net: torch.nn.Module, channels: np.ndarray, where: np.ndarray,
                batch: int = 8) -> np.ndarray:
    """Apply ``net`` to the :data:`BLOCK`-px blocks that hold a ``where`` pixel, each seen
    with :data:`HALO` px of context (mirrored beyond the image edge): ``(ny, nx)``
    float32 output of the first channel, 0 in blocks without ``where`` pixels."""
    configure_torch()
    _, ny, nx = channels.shape
    out = np.zeros((ny, nx), dtype=np.float32)
    corners = [(by * BLOCK, bx * BLOCK) for by, bx in zip(*np.nonzero(_busy(where)),
                                                          strict=True)]
    forward, side = _forward(net), BLOCK + 2 * HALO
    with torch.inference_mode():
        for first in range(0, len(corners), batch):
            chunk = corners[first:first + batch]
            windows = np.stack([_window(channels, y, x, side) for y, x in chunk])
            result = forward(windows)[:, 0, HALO:HALO + BLOCK, HALO:HALO + BLOCK]
            for (y, x), res in zip(chunk, result, strict=True):
                h, w = min(BLOCK, ny - y), min(BLOCK, nx - x)
                out[y:y + h, x:x + w] = res[:h, :w]
    return out


def _busy(where: np.ndarray) -> np.ndarray:
    """bool ``(ceil(ny / BLOCK), ceil(nx / BLOCK))``: blocks holding a ``where`` pixel."""
    ny, nx = where.shape
    return np.add.reduceat(np.add.reduceat(where, np.arange(0, ny, BLOCK), axis=0),
                           np.arange(0, nx, BLOCK), axis=1) > 0


def _window(channels: np.ndarray, y: int, x: int, side: int) -> np.ndarray:
    """``channels[:, y - HALO : y - HALO + side, x - HALO : x - HALO + side]``, mirrored
    where it leaves the image, float32 ``(C, side, side)``."""
    _, ny, nx = channels.shape
    y0, x0 = y - HALO, x - HALO
    cut = channels[:, max(y0, 0):min(y0 + side, ny), max(x0, 0):min(x0 + side, nx)]
    pad = ((0, 0), (max(-y0, 0), max(y0 + side - ny, 0)), (max(-x0, 0), max(x0 + side - nx, 0)))
    return np.pad(cut, pad, mode="symmetric") if any(p[0] or p[1] for p in pad[1:]) else cut


def _run_tiles(net: torch.nn.Module, channels: np.ndarray, multiple: int, tile: int = TILE
               ) -> np.ndarray:
    """Apply ``net`` over ``channels`` ``(C, ny, nx)`` in overlapping tiles: ``(K, ny, nx)``."""
    configure_torch()
    with torch.inference_mode():
        return tiled_apply(channels, _forward(net), tile=tile, overlap=OVERLAP, batch=1,
                           multiple=multiple)


class CrMaskNet:
    """Cosmic-ray probability per pixel from a 3-channel U-Net (scikit-learn shape).

    Parameters
    ----------
    width : int
        Channels of the first U-Net level.
    depth : int
        Poolings of the U-Net.
    threshold : float
        Probability above which a pixel is called a cosmic ray.
    """

    kind = "crmask_unet"

    def __init__(self, width: int = 8, depth: int = 2, threshold: float = 0.5):
        self.width, self.depth, self.threshold = width, depth, threshold
        self.net = UNet(3, 1, width=width, depth=depth).eval()
        self.net.to(memory_format=torch.channels_last)

    def logits(self, channels: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Logits, float32 ``(ny, nx)``, for inputs from :func:`network_inputs`.

        With ``where`` (bool ``(ny, nx)``) only the blocks holding such pixels are
        computed (the rest are 0), unless their halos would cost more than the whole
        image (a crowded field): then the whole image is."""
        self.net.eval()
        if where is not None and _busy(where).mean() * ((BLOCK + 2 * HALO) / BLOCK) ** 2 < 1:
            return _run_blocks(self.net, channels, where)
        # activations grow with the width: wider nets take smaller tiles (memory)
        tile = TILE if self.width <= 8 else TILE // 2
        return _run_tiles(self.net, channels, 2**self.depth, tile)[0]

    def probabilities(self, channels: np.ndarray, where: np.ndarray | None = None
                      ) -> np.ndarray:
        """Cosmic-ray probability, float32 ``(ny, nx)``, from :func:`network_inputs`'
        channels (``where``: see :meth:`logits`)."""
        logits = self.logits(channels, where)
        return (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)

    def predict_proba(self, image: np.ndarray, noise: NoiseModel) -> np.ndarray:
        """Cosmic-ray probability, float32 ``(ny, nx)``."""
        return self.probabilities(network_inputs(image, noise))

    def predict(self, image: np.ndarray, noise: NoiseModel,
                threshold: float | None = None) -> np.ndarray:
        """bool cosmic-ray mask, ``(ny, nx)``."""
        cut = self.threshold if threshold is None else threshold
        return self.predict_proba(image, noise) > cut

    def config(self) -> dict:
        """Arguments that rebuild this model."""
        return {"kind": self.kind, "width": self.width, "depth": self.depth,
                "threshold": self.threshold, "soften": SOFTEN}

    def save(self, path: str | os.PathLike, card: dict) -> Path:
        """Write the checkpoint and its model card (see :func:`skytriage.nn.save_checkpoint`)."""
        return save_checkpoint(path, self.net, self.config(), card)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CrMaskNet:
        """Read a checkpoint written by :meth:`save`."""
        config, state = load_checkpoint(path)
        model = cls(config["width"], config["depth"], config["threshold"])
        model.net.load_state_dict(state)
        model.net.eval()
        return model


class Inpainter:
    """Learned inpainting: corrects the masked-median fill using the local profile.

    The network sees the image (masked pixels filled by the masked median), the mask and
    the noise share, and predicts ``asinh(z_clean / 3)`` at masked pixels as a correction
    to the fill. Only masked pixels change.
    """

    kind = "crmask_inpaint"

    def __init__(self, width: int = 8, depth: int = 2):
        self.width, self.depth = width, depth
        self.net = UNet(3, 1, width=width, depth=depth).eval()
        self.net.to(memory_format=torch.channels_last)

    @staticmethod
    def inputs(filled: np.ndarray, mask: np.ndarray, noise: NoiseModel) -> np.ndarray:
        """Input channels ``(3, ny, nx)``: filled significance, mask, noise share."""
        z = (filled - noise.background) / noise.background_rms
        share = noise.background_rms / noise.sigma
        return np.stack([np.arcsinh(z / SOFTEN), mask.astype(np.float32), share]).astype(
            np.float32)

    def inpaint(self, filled: np.ndarray, mask: np.ndarray, noise: NoiseModel) -> np.ndarray:
        """Image with the ``mask`` pixels replaced, float32 ``(ny, nx)`` in input units."""
        channels = self.inputs(filled, mask, noise)
        self.net.eval()
        correction = _run_tiles(self.net, channels, 2**self.depth)[0]
        z = SOFTEN * np.sinh(channels[0] + correction)
        out = filled.copy()
        out[mask] = (noise.background + z * noise.background_rms)[mask]
        return out

    def config(self) -> dict:
        """Arguments that rebuild this model."""
        return {"kind": self.kind, "width": self.width, "depth": self.depth, "soften": SOFTEN}

    def save(self, path: str | os.PathLike, card: dict) -> Path:
        """Write the checkpoint and its model card."""
        return save_checkpoint(path, self.net, self.config(), card)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Inpainter:
        """Read a checkpoint written by :meth:`save`."""
        config, state = load_checkpoint(path)
        model = cls(config["width"], config["depth"])
        model.net.load_state_dict(state)
        model.net.eval()
        return model
