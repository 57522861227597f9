"""The CNN: augmentations move offsets with the pixels, save/load, grid-layout labels."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.transients.model import OVERLAP, TILE, TransientScorer, augment, invert_offsets
from skytriage.transients.train import _label_grid


def _blob_tiles(n: int, rng: np.random.Generator):
    """Noise tiles; half carry a Gaussian source in the difference plane (and the science
    plane) at a known offset of up to 3 px from the tile centre."""
    tiles = rng.normal(0, 0.3, (n, 3, TILE, TILE)).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.float32)
    offsets = rng.uniform(-3, 3, (n, 2)).astype(np.float32)
    yy, xx = np.mgrid[:TILE, :TILE]
    for k in np.flatnonzero(labels):
        x0, y0 = TILE // 2 + offsets[k]
        blob = 3.0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.3**2))
        tiles[k, 1] += blob
        tiles[k, 2] += blob
    offsets[labels == 0] = 0
    return tiles, labels, offsets


@pytest.mark.parametrize("k", range(6))
def test_augmentations_move_the_offsets_with_the_pixels(k):
    rng = np.random.default_rng(k)
    tiles = np.zeros((5, 3, TILE, TILE), np.float32)
    offsets = rng.integers(-20, 20, (5, 2)).astype(np.float32)
    for i, (dx, dy) in enumerate(offsets.astype(int)):
        tiles[i, :, TILE // 2 + dy, TILE // 2 + dx] = 1.0
    moved, new_offsets = augment(tiles, offsets, k)
    for i, (dx, dy) in enumerate(new_offsets.astype(int)):
        assert moved[i, 0, TILE // 2 + dy, TILE // 2 + dx] == 1.0
    assert np.allclose(invert_offsets(new_offsets, k), offsets)


def test_save_and_load_give_the_same_scores_and_card(tmp_path):
    tiles, _, _ = _blob_tiles(16, np.random.default_rng(6))
    scorer = TransientScorer.new()
    scorer.card = {"seed": 3}
    path = scorer.save(tmp_path / "m.pt")
    again = TransientScorer.load(path)
    assert np.allclose(again.predict(tiles)[0], scorer.predict(tiles)[0], atol=1e-6)
    assert again.card["seed"] == 3 and again.config["widths"] == scorer.config["widths"]


def test_grid_layout_labels_the_transient_nearest_the_tile_centre():
    """A grid tile is real when a transient lies within half the grid step (27 px) of its
    centre on both axes, and its target is the nearest such transient."""
    truth = np.array([[100.0, 100.0], [130.0, 100.0]])
    cx, cy = np.array([100, 121, 158, 60, 100]), np.array([100, 100, 100, 100, 128])
    labels, offsets = _label_grid(cx, cy, truth)
    reach = (TILE - OVERLAP) // 2
    assert reach == 27
    assert labels.tolist() == [1, 1, 0, 0, 0]
    assert np.allclose(offsets[:2], [[0, 0], [9, 0]])
