"""How high can pixel F1 go against crmask's truth? A scene-knowing oracle beside the U-Net.

    python benchmarks/crmask_truth_ceiling.py [--seeds 8100-8105] [--size 768]

The simulator's truth calls a pixel a cosmic-ray pixel when its deposit exceeds
``TRUTH_SIGMA`` (2) times its own noise. Near that threshold no detector can tell a
deposit of 1.9 sigma from one of 2.1 sigma. This script measures how much F1 that costs:

1. *Oracle*: it knows the noiseless scene (stars, galaxies, sky) exactly, so it sees
   each pixel's deposit plus that pixel's noise, in sigma. It flags a pixel above ``t1``
   sigma, or above ``t2`` sigma next to a pixel above ``t_seed`` (a track's faint edge).
   The best F1 over a grid of the three thresholds is reported. No real detector knows
   the scene, so this is a bar a real one should not clear by much.
2. *U-Net* (shipped model, probability > its threshold) on the same exposures.

Both are scored against the 2-sigma truth and against truths with a band left out: a
pixel counts as a cosmic ray when its deposit exceeds ``HI`` sigma and as clean when it
is at most ``LO`` sigma; pixels between count neither way. Saturated pixels are left out.
Prints one table.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd
from scipy import ndimage

from skytriage.crmask.detect import noise_model, saturation_level, saturation_mask
from skytriage.crmask.pipeline import load_mask_model
from skytriage.crmask.simulate import TRUTH_SIGMA, draw_plan, simulate_exposure

BANDS = [(TRUTH_SIGMA, TRUTH_SIGMA), (1.0, 3.0), (1.0, 5.0), (0.5, 5.0)]
"""(LO, HI) truth definitions, in sigma of each pixel's own noise."""

ORACLE_GRID = {"t1": (3.0, 3.5, 4.0, 4.5, 5.0), "t2": (1.5, 2.0, 2.5, 3.0),
               "t_seed": (5.0, 8.0)}


def exposures(seeds: range, size: int) -> list[dict]:
    """Simulated exposures with the deposit significance the oracle sees and the truth's."""
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        plan = draw_plan(rng, (size, size))
        exposure = simulate_exposure(plan, rng)
        noise_e = np.sqrt(plan.read_noise**2 + exposure.scene)
        out.append({
            "image": exposure.image, "gain": plan.gain,
            "observed": (exposure.image * plan.gain - exposure.scene) / noise_e,
            "deposit": exposure.cr_charge / noise_e,
            "valid": (exposure.mask & 32) == 0})
    return out


def oracle_mask(observed: np.ndarray, t1: float, t2: float, t_seed: float) -> np.ndarray:
    """Pixels above ``t1`` sigma, or above ``t2`` next to one above ``t_seed``."""
    near = ndimage.binary_dilation(observed > t_seed, np.ones((3, 3), bool))
    return (observed > t1) | (near & (observed > t2))


def unet_mask(item: dict) -> np.ndarray:
    """The shipped U-Net's mask of one exposure."""
    image = item["image"].astype(np.float32)
    saturated = saturation_mask(image, saturation_level(image, None))
    noise = noise_model(image, item["gain"], ignore=saturated)
    masker = load_mask_model()
    return masker.predict_proba(image, noise) > masker.threshold


def f1(masks: list[np.ndarray], items: list[dict], lo: float, hi: float) -> float:
    """Pooled F1: positives deposit > ``hi`` sigma, negatives deposit <= ``lo``."""
    tp = fp = fn = 0
    for mask, item in zip(masks, items, strict=True):
        valid = item["valid"]
        positive = (item["deposit"] > hi) & valid
        negative = (item["deposit"] <= lo) & valid
        tp += int((mask & positive).sum())
        fp += int((mask & negative).sum())
        fn += int((~mask & positive).sum())
    return 2 * tp / max(2 * tp + fp + fn, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="8100-8105")
    parser.add_argument("--size", type=int, default=768)
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    items = exposures(range(int(first), int(last or first) + 1), args.size)
    unet = [unet_mask(item) for item in items]
    oracle = {t: [oracle_mask(i["observed"], *t) for i in items]
              for t in itertools.product(*ORACLE_GRID.values())}
    rows = []
    for lo, hi in BANDS:
        best = max((f1(masks, items, lo, hi), t) for t, masks in oracle.items())
        rows.append({"positive: deposit >": hi, "negative: deposit <=": lo,
                     "oracle F1": round(best[0], 4), "oracle (t1, t2, t_seed)": best[1],
                     "U-Net F1": round(f1(unet, items, lo, hi), 4)})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
