"""The learned side of crmask: a small U-Net that masks cosmic rays and one that inpaints them.

Both see the image through the noise model, so they work at any gain, sky level and
unit: channel 0 is the significance above the background, channel 1 the same after a
5×5 median (the local star profile without thin features), channel 2 the share of
background noise in each pixel's noise (1 on sky, → 0 on bright stars). Significances are
compressed with ``asinh(z / 3)`` so that faint hits and saturated-looking cores fit one
scale. Inference runs in overlapping tiles (float32, channels-last, all cores) and keeps
only the centre of each tile, so neither tile borders nor image edges leave artefacts.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from skytriage.crmask.detect import NoiseModel
from skytriage.nn import UNet, configure_torch, load_checkpoint, save_checkpoint, tiled_apply

SOFTEN = 3.0
"""Significances enter the networks as ``asinh(z / SOFTEN)``."""

TILE = 1024
OVERLAP = 48


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


def _run_tiles(net: torch.nn.Module, channels: np.ndarray, multiple: int) -> np.ndarray:
    """Apply ``net`` over ``channels`` ``(C, ny, nx)`` in overlapping tiles: ``(K, ny, nx)``."""
    configure_torch()

    def forward(tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(tiles).contiguous(memory_format=torch.channels_last)
        return net(x).float().numpy()

    with torch.inference_mode():
        return tiled_apply(channels, forward, tile=TILE, overlap=OVERLAP, batch=1,
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

    def logits(self, channels: np.ndarray) -> np.ndarray:
        """Logits, float32 ``(ny, nx)``, for inputs from :func:`network_inputs`."""
        self.net.eval()
        return _run_tiles(self.net, channels, 2**self.depth)[0]

    def predict_proba(self, image: np.ndarray, noise: NoiseModel) -> np.ndarray:
        """Cosmic-ray probability, float32 ``(ny, nx)``."""
        logits = self.logits(network_inputs(image, noise))
        return (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)

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
