"""Preview on full-size sCMOS frames: speed, memory, the sep anchor, and what binning costs.

    python benchmarks/bench_preview.py [--size 9576x6388] [--frames 6] [--out bench-output]

1. Simulates one dataset of full-size frames (``skytriage simulate frames``).
2. Times ``frame_features`` per frame (median), its peak traced memory (numpy and OpenCV
   buffers) against the frame's own size, and, in the same run on the same frames,
   ``sep.Background`` + ``sep.extract`` (the anchor), plus astropy ``sigma_clipped_stats``
   against our histogram statistics.
3. Measures every frame again without binning and compares the features that carry the
   classes and the classifier's decisions: binning must not change what preview says.

Appends one JSON line to ``OUT/bench_preview.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import sep
from astropy.stats import sigma_clipped_stats

from skytriage.io import read_frame
from skytriage.preview import features
from skytriage.preview.model import FrameClassifier
from skytriage.preview.pipeline import score
from skytriage.preview.simulate import simulate_frames

COMPARED = ("n_blobs", "fwhm", "ellipticity", "line_snr", "bkg_structure", "edge_dark",
            "row_peak", "col_peak", "median")


def timed(func):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    result = func()
    return time.perf_counter() - t0, result


def traced_peak_mib(func) -> float:
    """Peak memory allocated while ``func`` runs (tracemalloc: numpy and Python), MiB."""
    tracemalloc.start()
    func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def sep_anchor(data: np.ndarray) -> int:
    """Background + extraction at 5σ with sep, the way a pipeline would find stars."""
    image = data.astype(np.float32)
    background = sep.Background(image)
    sep.set_extract_pixstack(10_000_000)
    return len(sep.extract(image - background.back(), 5.0, err=background.globalrms))


def measure_all(paths: list[Path], max_side: int) -> pd.DataFrame:
    """Features of every frame with the binned image capped at ``max_side`` px."""
    original = features.MAX_BINNED_SIDE
    features.MAX_BINNED_SIDE = max_side
    try:
        rows = [features.frame_features(read_frame(p, dtype=None).data) for p in paths]
    finally:
        features.MAX_BINNED_SIDE = original
    table = pd.DataFrame(rows)
    table.insert(0, "path", [str(p) for p in paths])
    table.insert(1, "dataset", "bench")
    table.insert(2, "frame", range(len(paths)))
    return features.add_relative_features(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="9576x6388", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    nx, ny = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        truth = simulate_frames(tmp, n_datasets=1, frames_per_dataset=args.frames,
                                shape=(ny, nx), seed=args.seed)
        paths = [Path(tmp) / p for p in truth["path"]]
        frames = [read_frame(p, dtype=None).data for p in paths]
        ours = [timed(lambda d=d: features.frame_features(d))[0] for d in frames]
        anchor = [timed(lambda d=d: sep_anchor(d))[0] for d in frames[:3]]
        stats_ours = timed(lambda: features.histogram_statistics(frames[0]))[0]
        stats_astropy = timed(lambda: sigma_clipped_stats(frames[0]))[0]
        peak = traced_peak_mib(lambda: features.frame_features(frames[0]))
        binned = measure_all(paths, features.MAX_BINNED_SIDE)
        full = measure_all(paths, max(nx, ny))
        model = FrameClassifier.load()
        decided_binned = score(binned, model)[["label", "labels"]]
        decided_full = score(full, model)[["label", "labels"]]
    frame_mib = frames[0].nbytes / 2**20
    differences = {c: float(np.median(np.abs(binned[c] - full[c])
                                      / np.maximum(np.abs(full[c]), 1e-9)))
                   for c in COMPARED}
    record = {
        "benchmark": "preview_features", "size": args.size, "frames": args.frames,
        "seconds_per_frame": round(statistics.median(ours), 3),
        "sep_seconds_per_frame": round(statistics.median(anchor), 3),
        "ratio_sep_over_ours": round(statistics.median(anchor) / statistics.median(ours), 2),
        "histogram_stats_s": round(stats_ours, 3), "sigma_clipped_stats_s": round(stats_astropy, 3),
        "peak_traced_mib": round(peak), "frame_mib": round(frame_mib),
        "peak_over_frame": round(peak / frame_mib, 2),
        "binning_factor": int(binned["bin_factor"].iloc[0]),
        "median_relative_difference_binned_vs_full": {k: round(v, 4)
                                                      for k, v in differences.items()},
        "labels_binned": decided_binned["labels"].tolist(),
        "labels_full_resolution": decided_full["labels"].tolist(),
        "truth": truth["labels"].tolist(),
    }
    print(f"{args.size}: preview features {record['seconds_per_frame']} s/frame "
          f"(sep background+extract {record['sep_seconds_per_frame']} s/frame, "
          f"{record['ratio_sep_over_ours']}x ours); histogram statistics {stats_ours:.3f} s "
          f"vs sigma_clipped_stats {stats_astropy:.2f} s; peak traced memory "
          f"{record['peak_traced_mib']} MiB = {record['peak_over_frame']}x the frame")
    print(f"binned by {record['binning_factor']} vs full resolution, median relative "
          f"difference: {record['median_relative_difference_binned_vs_full']}")
    print(f"labels binned:   {record['labels_binned']}\nlabels full-res: "
          f"{record['labels_full_resolution']}\ntruth:           {record['truth']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_preview.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
