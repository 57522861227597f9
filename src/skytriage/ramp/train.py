"""Training data for the ramp network: simulated ramps, the rules' candidates, truth labels.

``skytriage ramp train`` simulates ramps from seeds never used for evaluation, runs the
first pass of the rules on each (reference correction, noise model, z-scores, level
changes), cuts the network's patches around the candidate pixels and labels every patch
pixel from the truth mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from skytriage.ramp.detect import RuleSettings, analyse_band
from skytriage.ramp.model import CLASSES, PATCH, PatchCollector
from skytriage.ramp.pipeline import read_corrected_band
from skytriage.ramp.refpix import channel_of_column, channel_offsets
from skytriage.ramp.simulate import CR, RTN, SNOWBALL, RampSimConfig, simulate_ramp
from skytriage.ramp.source import ramp_from_array


def label_map(truth_mask: np.ndarray, ambiguous: np.ndarray) -> np.ndarray:
    """Class index of every pixel (see ``model.CLASSES``); -1 where not scored."""
    labels = np.zeros(truth_mask.shape, np.int64)
    labels[truth_mask & CR > 0] = CLASSES.index("cr")
    labels[truth_mask & RTN > 0] = CLASSES.index("rtn")
    labels[truth_mask & SNOWBALL > 0] = CLASSES.index("snowball")
    labels[ambiguous] = -1
    return labels


def ramp_patches(config: RampSimConfig, seed: int,
                 settings: RuleSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Patches and patch labels of one simulated ramp.

    Returns
    -------
    inputs : numpy.ndarray
        ``(n, 2, D, PATCH, PATCH)`` float32.
    labels : numpy.ndarray
        ``(n, PATCH, PATCH)`` int64 (-1 outside the array or not scored).
    """
    settings = settings or RuleSettings()
    sim = simulate_ramp(config, seed)
    h = sim.header
    source = ramp_from_array(sim.data, gain=h["GAIN"], read_noise=h["RDNOISE"],
                             saturation=h["SATURATE"], refpix=config.refpix)
    ny, nx = config.shape
    offsets = channel_offsets(source, config.refpix, config.n_outputs)
    reads, sat = read_corrected_band(source, 0, ny, offsets, config.refpix,
                                     channel_of_column(nx, config.n_outputs))
    collector = PatchCollector()
    analyse_band(reads, sat, h["GAIN"], h["RDNOISE"], settings, collector=collector)
    if not collector.inputs:
        return np.zeros((0, 2, 2, PATCH, PATCH), np.float32), np.zeros((0, PATCH, PATCH),
                                                                        np.int64)
    ys, xs = np.concatenate(collector.ys), np.concatenate(collector.xs)
    half = PATCH // 2
    padded = np.full((ny + PATCH, nx + PATCH), -1, np.int64)
    padded[half:half + ny, half:half + nx] = label_map(sim.truth_mask, sim.ambiguous)
    labels = np.stack([padded[y:y + PATCH, x:x + PATCH] for y, x in zip(ys, xs, strict=True)])
    return np.concatenate(collector.inputs), labels


def training_set(config: RampSimConfig, seeds: Sequence[int], group_counts: Sequence[int],
                 progress: Callable[[str], None] | None = None
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Patches of ramps of every length in ``group_counts`` (one array per length)."""
    inputs, labels = [], []
    for n_groups in group_counts:
        parts = [ramp_patches(_with_groups(config, n_groups), seed) for seed in seeds]
        inputs.append(np.concatenate([p[0] for p in parts]))
        labels.append(np.concatenate([p[1] for p in parts]))
        if progress is not None:
            progress(f"{n_groups} groups: {len(inputs[-1])} patches")
    return inputs, labels


def _with_groups(config: RampSimConfig, n_groups: int) -> RampSimConfig:
    return RampSimConfig.from_dict({**config.as_dict(), "n_groups": n_groups})


def held_out_scores(net, config: RampSimConfig, seeds: Sequence[int],
                    group_counts: Sequence[int]) -> dict:
    """Scores of the rules alone and fused with ``net`` on held-out simulated ramps.

    Returns
    -------
    dict
        ``{"<n> groups": {"rules": scores, "fused": scores}}`` with the pooled scores of
        :func:`skytriage.ramp.evaluate.mean_scores`.
    """
    from skytriage.ramp.evaluate import mean_scores, score
    from skytriage.ramp.pipeline import run
    from skytriage.ramp.simulate import truth_of

    out = {}
    for n_groups in group_counts:
        runs: dict[str, list] = {"rules": [], "fused": []}
        for seed in seeds:
            sim = simulate_ramp(_with_groups(config, n_groups), seed)
            h = sim.header
            for name, model in (("rules", None), ("fused", net)):
                result = run(sim.data, gain=h["GAIN"], read_noise=h["RDNOISE"],
                             saturation=h["SATURATE"], refpix=config.refpix, model=model)
                runs[name].append(score(result.mask, truth_of(sim), refpix=config.refpix))
        out[f"{n_groups} groups"] = {k: mean_scores(v) for k, v in runs.items()}
    return out
