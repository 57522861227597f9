"""The learned part: a CNN that scores a candidate real/bogus and refines its position.

The architecture is the Roman study's: five blocks of 3x3 convolution, batch norm, ReLU,
2x2 max pooling and dropout 0.2; a spatial-attention layer (a sigmoid map from a 1x1
convolution, multiplied into the features); global average pooling; dense 128; a head.
The head has three outputs instead of the study's two coordinates: a real/bogus logit and
the transient's offset ``(dx, dy)`` from the centre of the 64x64 tile (in units of 32 px).
Its input is a (reference, science, difference) triplet in noise units.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skytriage.nn import configure_torch, load_checkpoint, save_checkpoint, shipped_weights

#: Side of the tiles the CNN sees (px) and the overlap of the tile grid (px).
TILE = 64
OVERLAP = 10
#: Offsets are regressed in units of half a tile.
OFFSET_SCALE = TILE / 2
MODEL_NAME = "transients_cnn.pt"
#: The same network trained on the study's grid layout (the baseline of ``evaluate``).
GRID_MODEL_NAME = "transients_grid_cnn.pt"


class SpatialAttention(nn.Module):
    """Multiply features by a sigmoid map computed from them by a 1x1 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class TransientNet(nn.Module):
    """Five conv blocks, spatial attention, GAP, dense 128, head (logit, dx, dy).

    Parameters
    ----------
    widths : sequence of int
        Channels of the five blocks.
    dropout : float
        Dropout after each block and before the head.
    """

    def __init__(self, widths: tuple[int, ...] = (8, 16, 24, 32, 48), dropout: float = 0.2):
        super().__init__()
        layers, n = [], 3
        for w in widths:
            layers += [nn.Conv2d(n, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(dropout)]
            n = w
        self.features = nn.Sequential(*layers)
        self.attention = SpatialAttention(n)
        self.dense = nn.Sequential(nn.Linear(n, 128), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.head = nn.Linear(128, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(self.features(x))
        return self.head(self.dense(x.mean(dim=(2, 3))))


def stretch(values: np.ndarray) -> np.ndarray:
    """Compress noise-unit pixels: ``asinh(v / 3)``, linear near the noise, log for stars."""
    return np.arcsinh(values / np.float32(3.0)).astype(np.float32)


def triplet_planes(sci: np.ndarray, ref: np.ndarray, diff: np.ndarray, noise_sci: float,
                   flux_ratio: float, diff_noise: float) -> np.ndarray:
    """The three CNN input planes ``(3, ny, nx)`` float32: reference (scaled to science
    flux), science, difference, each divided by its noise and stretched."""
    planes = np.empty((3, *sci.shape), np.float32)
    planes[0] = stretch(ref * np.float32(flux_ratio / noise_sci))
    planes[1] = stretch(sci * np.float32(1 / noise_sci))
    planes[2] = stretch(diff * np.float32(1 / diff_noise))
    return planes


def cut_tiles(planes: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """64x64 tiles of ``planes`` whose centre pixel ``(TILE // 2)`` is ``(cx, cy)`` (ints);
    outside the image is 0. Returns ``(n, 3, 64, 64)`` float32."""
    half = TILE // 2
    padded = np.pad(planes, ((0, 0), (half, half), (half, half)))
    tiles = np.empty((len(cx), planes.shape[0], TILE, TILE), np.float32)
    for k, (x, y) in enumerate(zip(cx, cy, strict=True)):
        tiles[k] = padded[:, y:y + TILE, x:x + TILE]
    return tiles


def augment(tiles: np.ndarray, offsets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The study's augmentations: ``k`` 0 identity, 1-3 rotations by 90/180/270 degrees,
    4 left-right flip, 5 up-down flip. Offsets ``(n, 2)`` (dx, dy) move with the pixels.

    The tile centre is pixel ``TILE // 2`` (not the geometric centre), so rotations and
    flips shift it by one pixel; the offsets account for that.
    """
    c = TILE // 2
    dx, dy = offsets[:, 0] + c, offsets[:, 1] + c  # positions in the tile
    last = TILE - 1
    if 1 <= k <= 3:
        out = np.rot90(tiles, k, axes=(2, 3))
        for _ in range(k):  # rot90 counter-clockwise in (row, col): (x, y) -> (y, last - x)
            dx, dy = dy, last - dx
    elif k == 4:
        out, dx = tiles[:, :, :, ::-1], last - dx
    elif k == 5:
        out, dy = tiles[:, :, ::-1, :], last - dy
    else:
        out = tiles
    return np.ascontiguousarray(out), np.stack([dx - c, dy - c], 1).astype(np.float32)


def invert_offsets(offsets: np.ndarray, k: int) -> np.ndarray:
    """Map offsets predicted on a tile augmented by :func:`augment` (``k``) back."""
    c, last = TILE // 2, TILE - 1
    dx, dy = offsets[:, 0] + c, offsets[:, 1] + c
    if 1 <= k <= 3:
        for _ in range(k):  # inverse of (x, y) -> (y, last - x) is (x, y) -> (last - y, x)
            dx, dy = last - dy, dx
    elif k == 4:
        dx = last - dx
    elif k == 5:
        dy = last - dy
    return np.stack([dx - c, dy - c], 1)


def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on the logit plus a smooth-L1 offset loss (px) on real tiles."""
    label = target[:, 0]
    bce = nn.functional.binary_cross_entropy_with_logits(output[:, 0], label)
    diff = nn.functional.smooth_l1_loss(output[:, 1:] * OFFSET_SCALE,
                                        target[:, 1:] * OFFSET_SCALE, reduction="none",
                                        beta=0.5).sum(1)
    offset = (diff * label).sum() / label.sum().clamp(min=1.0)
    return bce + 0.2 * offset


@dataclass
class TransientScorer:
    """Real/bogus scores and refined positions for candidate tiles (scikit-learn shape).

    Attributes
    ----------
    net : TransientNet
    config : dict
        Arguments of the network and its input convention.
    card : dict
        Model card (training data, seed, command, metrics).
    """

    net: TransientNet
    config: dict
    card: dict

    @classmethod
    def new(cls, widths: tuple[int, ...] = (8, 16, 24, 32, 48)) -> TransientScorer:
        """An untrained scorer."""
        config = {"widths": list(widths), "tile": TILE, "offset_scale": OFFSET_SCALE,
                  "planes": ["ref", "sci", "diff"], "stretch": "asinh(v / 3)"}
        return cls(TransientNet(tuple(widths)), config, {})

    def fit(self, tiles: np.ndarray, labels: np.ndarray, offsets: np.ndarray, *, steps: int,
            seed: int, batch: int = 64, validation: tuple | None = None,
            progress: bool = False):
        """Train on tiles with the study's augmentations drawn at random per batch.

        Parameters
        ----------
        tiles : numpy.ndarray
            ``(n, 3, 64, 64)`` float32 from :func:`cut_tiles`.
        labels : numpy.ndarray
            ``(n,)`` 1 real, 0 bogus.
        offsets : numpy.ndarray
            ``(n, 2)`` true position minus tile centre (px); ignored for bogus tiles.
        steps, seed, batch : int
            Optimiser steps, seed, tiles per step.
        validation : (tiles, labels, offsets), optional
            Held-out tiles; the weights with the lowest validation loss are kept.
        """
        from skytriage.nn import seed_everything, train_steps

        device = configure_torch()
        rng = seed_everything(seed)
        positives = np.flatnonzero(labels == 1)
        negatives = np.flatnonzero(labels == 0)

        def next_batch(gen: np.random.Generator):
            pick = np.concatenate([gen.choice(positives, batch // 2),
                                   gen.choice(negatives, batch - batch // 2)])
            x, off = augment(tiles[pick], offsets[pick], int(gen.integers(0, 6)))
            return _tensors(x, labels[pick], off)

        val_batches = None
        if validation is not None:
            vt, vl, vo = validation
            val_batches = [_tensors(vt[i:i + 256], vl[i:i + 256], vo[i:i + 256])
                           for i in range(0, len(vt), 256)]
        history = train_steps(self.net, next_batch, loss_fn, steps=steps, rng=rng,
                              validation=val_batches, lr=2e-3, eval_every=max(steps // 10, 1),
                              progress=progress, device=device)
        self.net.cpu().eval()
        return history

    @torch.inference_mode()
    def predict(self, tiles: np.ndarray, augmentation: int = 0, batch: int = 512
                ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (probability real) ``(n,)`` and offsets (px) ``(n, 2)`` for tiles."""
        self.net.eval()
        scores, offsets = [], []
        for i in range(0, len(tiles), batch):
            x, _ = augment(tiles[i:i + batch], np.zeros((len(tiles[i:i + batch]), 2)),
                           augmentation)
            out = self.net(torch.from_numpy(x)).numpy()
            scores.append(1 / (1 + np.exp(-out[:, 0])))
            offsets.append(invert_offsets(out[:, 1:] * OFFSET_SCALE, augmentation))
        if not scores:
            return np.zeros(0), np.zeros((0, 2))
        return np.concatenate(scores), np.concatenate(offsets)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint and its model card (``.json``)."""
        return save_checkpoint(path, self.net, self.config, self.card)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, layout: str = "candidates"
             ) -> TransientScorer:
        """Read a checkpoint; by default the shipped model of ``layout`` (``candidates``:
        the scorer of the full method; ``grid``: the study's layout)."""
        from skytriage.nn.registry import read_card

        name = GRID_MODEL_NAME if layout == "grid" else MODEL_NAME
        path = Path(path) if path is not None else shipped_weights(name)
        config, state = load_checkpoint(path)
        net = TransientNet(tuple(config["widths"]))
        net.load_state_dict(state)
        net.eval()
        return cls(net, config, read_card(path))


def _tensors(tiles: np.ndarray, labels: np.ndarray, offsets: np.ndarray):
    target = np.column_stack([labels, offsets / OFFSET_SCALE]).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(tiles)), torch.from_numpy(target)
