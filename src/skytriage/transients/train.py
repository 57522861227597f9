"""Training tiles from simulated pairs, and the training of the shipped CNN.

Every simulated pair goes through the real pipeline (alignment, ZOGY, candidates), so the
CNN learns on the residuals it will meet. Two kinds of tiles are cut:

- candidate tiles, centred on each S_corr peak: real when a true transient lies within
  2 px (target: its offset from the tile centre), bogus otherwise (cosmic rays, hot
  pixels, saturated stars, subtraction residuals, noise);
- optionally (``grid_fraction``), grid tiles (the study's layout), centred anywhere: real
  when a transient with S/N >= 5 lies within 26 px of the centre on both axes (target:
  the one nearest the centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from skytriage.transients.detect import find_candidates, prepare_images
from skytriage.transients.model import TILE, cut_tiles, triplet_planes
from skytriage.transients.simulate import PairConfig, simulate_pair

#: A candidate within this distance (px) of a true transient is real.
MATCH_RADIUS = 2.0
#: Candidates are cut down to this |S_corr| so that the CNN also sees marginal ones.
TRAINING_THRESHOLD = 4.5
_GRID_REACH = TILE // 2 - 6


@dataclass
class TileSet:
    """Tiles ``(n, 3, 64, 64)``, labels ``(n,)`` and offsets ``(n, 2)`` (px)."""

    tiles: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def pair_tiles(seed: int, config: PairConfig, grid_fraction: float = 0.0) -> TileSet:
    """Candidate tiles of one simulated pair, plus ``grid_fraction`` times as many grid
    tiles."""
    pair = simulate_pair(seed, config)
    prepared = prepare_images(pair.ref, pair.sci, pair.ref_header, pair.sci_header,
                              gains=(pair.ref_header["GAIN"], pair.sci_header["GAIN"]))
    sub = prepared.subtraction
    planes = triplet_planes(prepared.sci, prepared.ref, sub.diff, prepared.noise_sci,
                            sub.flux_ratio, sub.diff_noise)
    truth = np.stack([np.asarray(pair.truth["x"]), np.asarray(pair.truth["y"])], 1)
    snr = np.asarray(pair.truth["snr"])
    candidates = find_candidates(sub.score, prepared.mask, TRAINING_THRESHOLD)
    cx = np.rint(candidates["x"].to_numpy()).astype(int)
    cy = np.rint(candidates["y"].to_numpy()).astype(int)
    labels, offsets = _label(cx, cy, truth, MATCH_RADIUS)
    rng = np.random.default_rng(seed + 1)
    n_grid = int(grid_fraction * len(cx))
    on_truth = rng.random(n_grid) < 0.5
    pick = rng.integers(0, len(truth), n_grid)
    gx = np.where(on_truth, truth[pick, 0] + rng.uniform(-_GRID_REACH, _GRID_REACH, n_grid),
                  rng.uniform(0, pair.sci.shape[1], n_grid))
    gy = np.where(on_truth, truth[pick, 1] + rng.uniform(-_GRID_REACH, _GRID_REACH, n_grid),
                  rng.uniform(0, pair.sci.shape[0], n_grid))
    gx = np.clip(np.rint(gx), 0, pair.sci.shape[1] - 1).astype(int)
    gy = np.clip(np.rint(gy), 0, pair.sci.shape[0] - 1).astype(int)
    bright = snr >= 5
    g_labels, g_offsets = _label_grid(gx, gy, truth[bright])
    return TileSet(cut_tiles(planes, np.concatenate([cx, gx]), np.concatenate([cy, gy])),
                   np.concatenate([labels, g_labels]), np.concatenate([offsets, g_offsets]))


def _label(cx: np.ndarray, cy: np.ndarray, truth: np.ndarray, radius: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Real when a truth position lies within ``radius`` px of the tile centre."""
    offsets = np.zeros((len(cx), 2), np.float32)
    if len(cx) == 0 or len(truth) == 0:
        return np.zeros(len(cx), np.float32), offsets
    centres = np.stack([cx, cy], 1).astype(float)
    dist, index = cKDTree(truth).query(centres, distance_upper_bound=radius + 0.75)
    real = np.isfinite(dist)
    offsets[real] = truth[index[real]] - centres[real]
    return real.astype(np.float32), offsets


def _label_grid(cx: np.ndarray, cy: np.ndarray, truth: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Real when a truth position lies within the tile's central box; nearest one wins."""
    offsets = np.zeros((len(cx), 2), np.float32)
    labels = np.zeros(len(cx), np.float32)
    if len(truth) == 0:
        return labels, offsets
    for k, (x, y) in enumerate(zip(cx, cy, strict=True)):
        d = truth - (x, y)
        inside = (np.abs(d) <= _GRID_REACH).all(axis=1)
        if inside.any():
            nearest = np.argmin(np.where(inside, np.hypot(*d.T), np.inf))
            labels[k], offsets[k] = 1.0, d[nearest]
    return labels, offsets


def tile_set(seeds, config: PairConfig, grid_fraction: float = 0.0, progress=None) -> TileSet:
    """Tiles of many simulated pairs, concatenated."""
    parts = []
    seeds = list(seeds)
    for i, seed in enumerate(seeds):
        parts.append(pair_tiles(seed, config, grid_fraction))
        if progress is not None:
            progress(i + 1, len(seeds))
    return TileSet(np.concatenate([p.tiles for p in parts]),
                   np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.offsets for p in parts]))
