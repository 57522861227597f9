"""Which truth events does ``skytriage ramp`` miss? Scores and the missed events, per ramp.

    python benchmarks/diagnose_ramp.py --size 1024 --groups 20 --seeds 300-301
    python benchmarks/diagnose_ramp.py --size 512 --groups 100 --sky 10 --seeds 300-301
    python benchmarks/diagnose_ramp.py --seeds 300-303 --set rtn_visit_sigma=5.0 --quiet

Runs the rules with the shipped network on simulated ramps (use seeds that the benchmark
does not: it measures on 100 and 200-201, the network trained on 1000-1007) and prints,
per seed, the per-class scores (all visible events, then ``clear_only``) and the missed
telegraph pixels and cosmic rays with what may explain them: RTN amplitude (e-), number
of transitions, best-visit SNR (``visit_snr``), whether a snowball covers the pixel; CR
energy (e-), footprint, whether another event covers its peak pixel (``overlapped``);
then the telegraph pixel recall per bin of ``visit_snr`` over all seeds, and the scores
pooled over all seeds. ``--set NAME=VALUE`` changes one of the rules' thresholds
(:class:`~skytriage.ramp.detect.RuleSettings`) for an operating curve.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

import numpy as np
import pandas as pd

from skytriage.ramp import RampSimConfig, run, score, simulate_ramp
from skytriage.ramp.detect import RuleSettings
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


def rule_settings(assignments: list[str]) -> RuleSettings:
    """RuleSettings with ``NAME=VALUE`` assignments applied (values cast to the field's type)."""
    types = {f.name: type(getattr(RuleSettings(), f.name)) for f in fields(RuleSettings)}
    changes = {}
    for text in assignments:
        name, _, value = text.partition("=")
        if name not in types:
            raise SystemExit(f"--set: no rule setting {name!r}")
        changes[name] = types[name](value)
    return replace(RuleSettings(), **changes)


def pooled(scores: list[dict]) -> dict:
    """Pixel recall and precision and event recall per class, pooled over ramps."""
    out = {}
    for name in ("cr", "rtn", "snowball"):
        rows = [s[name] for s in scores]
        truth = sum(r["truth_pixels"] for r in rows)
        flagged = sum(r["flagged_pixels"] for r in rows)
        events = sum(r["truth_events"] for r in rows)
        out[name] = {
            "event_recall": sum(r["event_recall"] * r["truth_events"] for r in rows)
            / max(events, 1),
            "pixel_recall": sum(r["pixel_recall"] * r["truth_pixels"] for r in rows)
            / max(truth, 1),
            "pixel_precision": sum(r["pixel_precision"] * r["flagged_pixels"] for r in rows
                                   if r["flagged_pixels"]) / max(flagged, 1),
            "truth_pixels": truth, "flagged_pixels": flagged}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--sky", type=float, default=None, help="e-/group (default 1-10)")
    parser.add_argument("--seeds", default="300-301")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a RuleSettings threshold (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="only the pooled scores")
    args = parser.parse_args()
    settings = rule_settings(args.set)
    first, _, last = args.seeds.partition("-")
    model = shipped_model()
    pd.set_option("display.width", 140)
    tables, every = [], []
    for seed in range(int(first), int(last or first) + 1):
        sky = {} if args.sky is None else {"sky": (args.sky, args.sky)}
        sim = simulate_ramp(RampSimConfig(shape=(args.size, args.size),
                                          n_groups=args.groups, **sky), seed)
        h = sim.header
        result = run(sim.data, gain=h["GAIN"], read_noise=h["RDNOISE"],
                     saturation=h["SATURATE"], model=model, settings=settings)
        every.append(score(result.mask, truth_of(sim)))
        tables.append(telegraph_table(sim, result.mask))
        if args.quiet:
            continue
        print(f"## seed {seed}, sky {h['SKYFLUX']} e-/group")
        for clear in (False, True):
            scores = score(result.mask, truth_of(sim), clear_only=clear)
            print("clear_only" if clear else "all", {
                name: {k: round(float(v), 4) for k, v in s.items()
                       if k in ("event_recall", "pixel_recall", "pixel_precision")}
                for name, s in scores.items() if name != "any"})
        rtn, cr = missed(sim, result.mask)
        print(f"missed telegraph pixels ({len(rtn)}):\n{rtn.round(1).to_string()}")
        print(f"missed cosmic rays ({len(cr)}):\n{cr.round(1).to_string()}\n")
    print("telegraph pixel recall by visit_snr, all seeds:")
    print(recall_by_visit_snr(pd.concat(tables)).round(3).to_string())
    print("pooled over all seeds:", " ".join(args.set) or "(default settings)")
    for name, row in pooled(every).items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v:g}"
                                        for k, v in row.items()))


if __name__ == "__main__":
    main()
