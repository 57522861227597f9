"""Transients on the same simulated pairs, same run: full method vs difference + extraction
alone vs the localisation CNN alone; seconds and peak memory per pair.

    python benchmarks/bench_transients.py [--size 4096] [--pairs 1] [--seed 9000]
                                          [--out bench-output] [--model PATH]
                                          [--grid-model PATH]

1. Simulates ``--pairs`` pairs of ``--size``² px (seeds never trained on).
2. For each pair, times and traces (tracemalloc peak, plus the process's peak RSS)
   ``transients.run`` (the full method: ZOGY, candidates, CNN, photometry), the same with
   ``use_cnn=False`` (the anchor: difference + extraction), the Gaussian-kernel
   subtraction + extraction, and the CNN alone on the study's tile grid (its own weights,
   trained on that layout).
3. Scores each against the truth: completeness at S/N 5-10 and >= 10, purity, within
   1/2/5 px, median |mag_diff error| at S/N >= 10.

Appends one JSON line to ``OUT/bench_transients.jsonl`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from skytriage.nn import configure_torch
from skytriage.transients import PairConfig, TransientScorer, grid_detect, run
from skytriage.transients.detect import prepare_pair
from skytriage.transients.evaluate import evaluate_pair, read_truth
from skytriage.transients.simulate import simulate_transients


def measured(func):
    """(seconds, peak traced MiB, result) of one call."""
    tracemalloc.start()
    t0 = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=9000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--grid-model", default=None)
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    configure_torch()
    scorer = TransientScorer.load(args.model)
    grid_scorer = TransientScorer.load(args.grid_model, layout="grid")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = simulate_transients(tmp, n_pairs=args.pairs, seed=args.seed,
                                      config=PairConfig(shape=(args.size, args.size)))
        for folder in folders:
            ref, sci = folder / "ref.fits", folder / "sci.fits"
            truth = read_truth(folder / "truth.ecsv")
            methods = {
                "full": lambda r=ref, s=sci: run(r, s, model=scorer).transients,
                "extraction (anchor)": lambda r=ref, s=sci: run(r, s, use_cnn=False).transients,
                "extraction, gaussian kernel": lambda r=ref, s=sci: run(
                    r, s, use_cnn=False, method="gaussian").transients,
                "cnn grid alone": lambda r=ref, s=sci: grid_detect(prepare_pair(r, s),
                                                                  grid_scorer),
            }
            for name, func in methods.items():
                seconds, peak, found = measured(func)
                quality = evaluate_pair(found, truth, (args.size, args.size))
                rows.append({"pair": folder.name, "method": name, "seconds": seconds,
                             "peak_traced_mib": peak, "mpix_per_s": args.size**2 / 1e6 / seconds,
                             **quality})
    anchor = np.median([r["seconds"] for r in rows if r["method"] == "extraction (anchor)"])
    for row in rows:
        row["time_ratio_to_anchor"] = row["seconds"] / anchor
    record = {"benchmark": "transients", "size": args.size, "pairs": args.pairs,
              "seed": args.seed, "peak_rss_mib": resource.getrusage(
                  resource.RUSAGE_SELF).ru_maxrss / 1024, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_transients.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
    keys = ["seconds", "time_ratio_to_anchor", "peak_traced_mib", "completeness_snr_5_10",
            "completeness_snr_ge_10", "purity", "within_1px",
            "median_abs_mag_diff_error_snr_ge_10"]
    print("| method | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for row in rows:
        cells = ["—" if row.get(k) is None else f"{row[k]:.3g}" for k in keys]
        print(f"| {row['method']} | " + " | ".join(cells) + " |")
    print(f"peak RSS of the process: {record['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
