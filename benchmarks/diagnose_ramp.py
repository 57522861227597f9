"""Which truth events does ``skytriage ramp`` miss? Scores and the missed events, per ramp.

    python benchmarks/diagnose_ramp.py --size 1024 --groups 20 --seeds 300-301
    python benchmarks/diagnose_ramp.py --size 512 --groups 100 --sky 10 --seeds 300-301

Runs the rules with the shipped network on simulated ramps (use seeds that the benchmark
does not: it measures on 100 and 200-201, the network trained on 1000-1007) and prints,
per seed, the per-class scores (all visible events, then ``clear_only``) and the missed
telegraph pixels and cosmic rays with what may explain them: RTN amplitude (e-), number
of transitions, best-visit SNR (``visit_snr``), whether a snowball covers the pixel; CR
energy (e-), footprint, whether another event covers its peak pixel (``overlapped``);
then the telegraph pixel recall per bin of ``visit_snr`` over all seeds.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from skytriage.ramp import RampSimConfig, run, score, simulate_ramp
from skytriage.ramp.model import shipped_model
from skytriage.ramp.simulate import CR, RTN, SNOWBALL, truth_of

VISIT_SNR_BINS = [0, 3, 4, 5, 6, 8, 12, np.inf]


def telegraph_table(sim, mask: np.ndarray) -> pd.DataFrame:
    """Visible telegraph pixels of one simulated ramp and whether ``mask`` found them."""
    events = sim.events.reset_index(drop=True)
    rtn = events[(events["kind"] == "rtn") & events["visible"]].copy()
    ys, xs = rtn["y"].astype(int).to_numpy(), rtn["x"].astype(int).to_numpy()
    rtn["found"] = mask[ys, xs] & RTN > 0
    rtn["under_snowball"] = sim.truth_mask[ys, xs] & SNOWBALL > 0
    return rtn


def recall_by_visit_snr(rtn: pd.DataFrame) -> pd.DataFrame:
    """Telegraph pixel recall per bin of the truth's ``visit_snr`` (the visit's S/N that
    no line plus one step explains): where a detector's limit lies."""
    bins = pd.cut(rtn["visit_snr"], VISIT_SNR_BINS)
    return rtn.groupby(bins, observed=True)["found"].agg(recall="mean", pixels="count")


def missed(sim, mask: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Missed visible telegraph pixels and cosmic rays of one simulated ramp."""
    events = sim.events.reset_index(drop=True)
    ids = sim.event_ids
    rtn = telegraph_table(sim, mask)
    cr = events[(events["kind"] == "cr") & events["visible"]].copy()
    owned = np.bincount(ids[ids >= 0], minlength=len(events))
    hit = np.bincount(ids[(ids >= 0) & (mask & CR > 0)], minlength=len(events))
    cr = cr[owned[cr.index] > 0]
    cr["found"] = hit[cr.index] > 0
    keep_rtn = ["x", "y", "electrons", "n_transitions", "visit_snr", "under_snowball"]
    keep_cr = ["x", "y", "group", "electrons", "n_pixels", "overlapped"]
    return rtn.loc[~rtn["found"], keep_rtn], cr.loc[~cr["found"], keep_cr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--sky", type=float, default=None, help="e-/group (default 1-10)")
    parser.add_argument("--seeds", default="300-301")
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    model = shipped_model()
    pd.set_option("display.width", 140)
    tables = []
    for seed in range(int(first), int(last or first) + 1):
        sky = {} if args.sky is None else {"sky": (args.sky, args.sky)}
        sim = simulate_ramp(RampSimConfig(shape=(args.size, args.size),
                                          n_groups=args.groups, **sky), seed)
        h = sim.header
        result = run(sim.data, gain=h["GAIN"], read_noise=h["RDNOISE"],
                     saturation=h["SATURATE"], model=model)
        print(f"## seed {seed}, sky {h['SKYFLUX']} e-/group")
        for clear in (False, True):
            scores = score(result.mask, truth_of(sim), clear_only=clear)
            print("clear_only" if clear else "all", {
                name: {k: round(float(v), 4) for k, v in s.items()
                       if k in ("event_recall", "pixel_recall", "pixel_precision")}
                for name, s in scores.items() if name != "any"})
        rtn, cr = missed(sim, result.mask)
        tables.append(telegraph_table(sim, result.mask))
        print(f"missed telegraph pixels ({len(rtn)}):\n{rtn.round(1).to_string()}")
        print(f"missed cosmic rays ({len(cr)}):\n{cr.round(1).to_string()}\n")
    print("telegraph pixel recall by visit_snr, all seeds:")
    print(recall_by_visit_snr(pd.concat(tables)).round(3).to_string())


if __name__ == "__main__":
    main()
