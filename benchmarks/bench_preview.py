"""Preview feature throughput on a full-size sCMOS frame, against astropy's sigma clipping.

    python benchmarks/bench_preview.py [--size 9576x6388] [--out bench-output]

Prints seconds per feature set and Mpix/s, the ratio of our histogram statistics to
``astropy.stats.sigma_clipped_stats`` (the anchor) on the same frame, and appends one JSON
line to ``OUT/bench_preview.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from astropy.stats import sigma_clipped_stats

from skytriage.preview import features


def _time(func, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def synthetic_frame(ny: int, nx: int, seed: int = 0) -> np.ndarray:
    """A uint16 sky frame with Poisson-like noise and a few thousand bright pixels."""
    rng = np.random.default_rng(seed)
    frame = rng.normal(1000.0, 12.0, size=(ny, nx)).astype(np.float32)
    idx = rng.integers(0, frame.size, size=frame.size // 2000)
    frame.ravel()[idx] += rng.uniform(100, 50000, size=idx.size).astype(np.float32)
    return np.clip(frame, 0, 65535).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="9576x6388", help="WIDTHxHEIGHT")
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    nx, ny = (int(v) for v in args.size.lower().split("x"))
    frame = synthetic_frame(ny, nx)
    mpix = frame.size / 1e6
    stats = features.histogram_statistics(frame)
    sigma = stats["sigma"]
    timings = {
        "histogram_statistics": _time(lambda: features.histogram_statistics(frame)),
        "focus_features": _time(lambda: features.focus_features(frame, sigma), 1),
        "background_features": _time(
            lambda: features.background_features(frame, sigma), 1),
        "pattern_noise_features": _time(
            lambda: features.pattern_noise_features(frame, stats["median"], sigma), 1),
        "frame_features": _time(lambda: features.frame_features(frame), 1),
        "astropy_sigma_clipped_stats": _time(lambda: sigma_clipped_stats(frame), 1),
    }
    record = {
        "benchmark": "preview_features", "size": args.size, "mpix": round(mpix, 2),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "frame_mpix_per_s": round(mpix / timings["frame_features"], 2),
        "stats_speedup_vs_astropy": round(timings["astropy_sigma_clipped_stats"]
                                          / timings["histogram_statistics"], 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    for name, seconds in timings.items():
        print(f"{name:30s} {seconds:8.3f} s  {mpix / seconds:8.1f} Mpix/s")
    print(f"histogram statistics are {record['stats_speedup_vs_astropy']}x faster than "
          f"sigma_clipped_stats; whole frame {record['frame_mpix_per_s']} Mpix/s; "
          f"peak RSS {record['peak_rss_mib']} MiB")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_preview.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
