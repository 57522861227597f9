"""How much of the star-region recall can a star-profile model reach, and how exact must it be?

    python benchmarks/crmask_star_oracle.py DIR [DIR ...]

DIR holds exposures written by ``skytriage simulate crmask``. Inside star regions (noiseless
sources above 5 background rms) an *oracle* subtracts the true noiseless scene and flags
residuals above ``seed`` sigma, grown 8-connected over residuals above ``grow`` sigma. A
real detector has to model each star instead; a model good to a relative error ``eps``
must add ``eps`` × the star to its noise or flag its own errors, so the oracle is rerun
with that term in the noise (no actual error added: these are upper bounds). Scored with
``crmask evaluate``'s own functions: recall within the 10× and 160× rms star regions and
the false-core rate. Prints one table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from skytriage.crmask.evaluate import false_cores, load_truth, star_region_counts

MISMATCH = (0.0, 0.005, 0.01, 0.02, 0.03)
"""Relative star-model errors ``eps`` tried."""
THRESHOLDS = ((5.0, 2.5), (4.0, 2.0))
"""(seed, grow) residual thresholds, sigma."""
CORE_LEVEL = 5.0
"""Star regions the oracle decides: sources above this many background rms."""


def oracle(truth, eps: float, seed: float, grow: float) -> np.ndarray:
    """Flags of the scene-knowing oracle in the star regions of one exposure."""
    sources = truth.sources
    sky_e = truth.sky_adu * truth.gain
    sigma = np.sqrt(truth.readnoise**2 + sources + sky_e + (eps * sources) ** 2)
    residual = ((truth.image - truth.sky_adu) * truth.gain - sources) / sigma
    region = sources > CORE_LEVEL * truth.gain * truth.sky_rms
    flagged = ndimage.binary_propagation(residual > seed, np.ones((3, 3), bool),
                                         mask=residual > grow)
    return flagged & region & truth.valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args()
    truths = [load_truth(p) for d in args.dirs for p in sorted(d.glob("*.fits"))]
    rows = []
    for eps in MISMATCH:
        for seed, grow in THRESHOLDS:
            total: dict[str, int] = {}
            for truth in truths:
                mask = oracle(truth, eps, seed, grow)
                for key, value in {**star_region_counts(mask, truth),
                                   **false_cores(mask, truth)}.items():
                    total[key] = total.get(key, 0) + int(value)
            rows.append({"eps": eps, "seed": seed, "grow": grow,
                         "recall_10rms": total["hit_in_10"] / total["cr_in_10"],
                         "recall_160rms": total["hit_in_160"] / total["cr_in_160"],
                         "false_core_rate": total["false_cores"] / total["clean_stars"]})
    print(f"{len(truths)} exposures")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
