"""Training tiles from simulated pairs, for the two layouts of the CNN.

Every simulated pair goes through the real pipeline (alignment, ZOGY, candidates), so the
CNN learns on the residuals it will meet.

- ``candidates`` (the shipped scorer): tiles centred on each S_corr peak; real when a true
  transient lies within 2 px (target: its offset from the tile centre), bogus otherwise
  (cosmic rays, hot pixels, saturated stars, subtraction residuals, noise).
- ``grid`` (the study's layout, the baseline): tiles centred anywhere, half of them within
  reach of a transient; real when a transient with S/N >= 5 lies within 27 px of the
  centre on both axes (target: the one nearest the centre). Tiles of a grid with 10-px
  overlap step by 54 px, so every pixel lies that close to some tile's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from skytriage.transients.detect import find_candidates, prepare_images
from skytriage.transients.model import OVERLAP, TILE, cut_tiles, triplet_planes
from skytriage.transients.simulate import PairConfig, simulate_pair

#: A candidate within this distance (px) of a true transient is real.
MATCH_RADIUS = 2.0
#: Candidates are cut down to this |S_corr| so that the CNN also sees marginal ones.
TRAINING_THRESHOLD = 4.5
_GRID_REACH = (TILE - OVERLAP) // 2


@dataclass
class TileSet:
    """Tiles ``(n, 3, 64, 64)``, labels ``(n,)`` and offsets ``(n, 2)`` (px)."""

    tiles: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def pair_tiles(seed: int, config: PairConfig, layout: str = "candidates",
               grid_tiles: int = 120) -> TileSet:
    """Tiles of one simulated pair: its candidates, or ``grid_tiles`` tiles of the grid
    layout."""
    pair = simulate_pair(seed, config)
    prepared = prepare_images(pair.ref, pair.sci, pair.ref_header, pair.sci_header,
                              gains=(pair.ref_header["GAIN"], pair.sci_header["GAIN"]))
    sub = prepared.subtraction
    planes = triplet_planes(prepared.sci, prepared.ref, sub.diff, prepared.noise_sci,
                            sub.flux_ratio, sub.diff_noise)
    truth = np.stack([np.asarray(pair.truth["x"]), np.asarray(pair.truth["y"])], 1)
    if layout == "grid":
        rng = np.random.default_rng(seed + 1)
        bright = np.asarray(pair.truth["snr"]) >= 5
        cx, cy = _grid_centres(truth[bright], pair.sci.shape, grid_tiles, rng)
        labels, offsets = _label_grid(cx, cy, truth[bright])
    elif layout == "candidates":
        candidates = find_candidates(sub.score, prepared.mask, TRAINING_THRESHOLD)
        cx = np.rint(candidates["x"].to_numpy()).astype(int)
        cy = np.rint(candidates["y"].to_numpy()).astype(int)
        labels, offsets = _label(cx, cy, truth, MATCH_RADIUS)
    else:
        raise ValueError(f"layout must be 'candidates' or 'grid', not {layout!r}")
    return TileSet(cut_tiles(planes, cx, cy), labels, offsets)


def _grid_centres(truth: np.ndarray, shape: tuple[int, int], n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` tile centres (int px): half within reach of a transient, half anywhere."""
    near = rng.random(n) < 0.5 if len(truth) else np.zeros(n, bool)
    pick = rng.integers(0, max(len(truth), 1), n)
    ny, nx = shape
    anywhere = rng.uniform(0, 1, (n, 2)) * (nx, ny)
    around = (truth[pick] if len(truth) else anywhere) + rng.uniform(-_GRID_REACH, _GRID_REACH,
                                                                      (n, 2))
    xy = np.where(near[:, None], around, anywhere)
    cx = np.clip(np.rint(xy[:, 0]), 0, nx - 1).astype(int)
    cy = np.clip(np.rint(xy[:, 1]), 0, ny - 1).astype(int)
    return cx, cy


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


def tile_set(seeds, config: PairConfig, layout: str = "candidates", progress=None
             ) -> TileSet:
    """Tiles of many simulated pairs, concatenated."""
    parts = []
    seeds = list(seeds)
    for i, seed in enumerate(seeds):
        parts.append(pair_tiles(seed, config, layout))
        if progress is not None:
            progress(i + 1, len(seeds))
    return TileSet(np.concatenate([p.tiles for p in parts]),
                   np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.offsets for p in parts]))
