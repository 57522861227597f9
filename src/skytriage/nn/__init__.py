"""Shared torch room: runtime set-up, building blocks, one training loop, model files, tiling.

Every learned model of skytriage is built from these pieces so that it trains, saves,
loads and runs over large images the same way.
"""

from skytriage.nn.blocks import ConvBlock, UNet
from skytriage.nn.registry import load_checkpoint, save_checkpoint, shipped_weights
from skytriage.nn.runtime import configure_torch, seed_everything
from skytriage.nn.tiling import tile_starts, tiled_apply
from skytriage.nn.training import TrainingHistory, train_steps

__all__ = [
    "ConvBlock",
    "TrainingHistory",
    "UNet",
    "configure_torch",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
    "shipped_weights",
    "tile_starts",
    "tiled_apply",
    "train_steps",
]
