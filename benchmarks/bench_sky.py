"""Render a full-size sCMOS frame: 20 000 Moffat stars + sky + vignetting + camera noise.

    python benchmarks/bench_sky.py [--size 9576x6388] [--stars 20000] [--out bench-output]

Prints the median of 3 renders (seconds, Mpix/s, per stage), the peak RSS, and the ratio
to the anchor, photutils' ``make_model_image`` with its ``MoffatPSF`` (25 x 25 px stamps,
centre sampling, stars only), timed once on the same stars; appends one JSON line to
``OUT/bench_sky.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from astropy.table import Table
from photutils.datasets import make_model_image
from photutils.psf import MoffatPSF

from skytriage import __version__
from skytriage.sky import SCMOS, Moffat, render_stars, sky_background, star_field, vignetting


def render(shape, stars, psf, camera, seed: int) -> dict[str, float]:
    """One frame; returns the seconds spent in each stage."""
    rng = np.random.default_rng(seed)
    times = {}
    t0 = time.perf_counter()
    signal = sky_background(shape, 300.0, gradient=0.05, angle=30.0)
    t1 = time.perf_counter()
    render_stars(signal, stars["x"], stars["y"], stars["flux"], psf)
    t2 = time.perf_counter()
    signal *= vignetting(shape, 0.2)
    t3 = time.perf_counter()
    camera.expose(signal, rng, 5.0)
    t4 = time.perf_counter()
    times.update(sky=t1 - t0, stars=t2 - t1, vignetting=t3 - t2, camera=t4 - t3, total=t4 - t0)
    return times


def anchor(shape, stars, psf) -> float:
    """Seconds photutils takes to render the same stars (no sky, no noise)."""
    table = Table({"x_0": stars["x"], "y_0": stars["y"], "flux": stars["flux"]})
    t0 = time.perf_counter()
    make_model_image(shape, MoffatPSF(alpha=psf.alpha, beta=psf.beta), table,
                     model_shape=(25, 25))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="9576x6388", help="WIDTHxHEIGHT")
    parser.add_argument("--stars", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench-output")
    args = parser.parse_args()
    nx, ny = (int(v) for v in args.size.lower().split("x"))
    shape = (ny, nx)
    stars = star_field(shape, args.stars, np.random.default_rng(0), fmin=100.0, fmax=1e6,
                       alpha=2.5)
    psf, camera = Moffat(3.0, 3.0), SCMOS(seed=1)
    t0 = time.perf_counter()
    camera.pattern(shape)  # the fixed pattern is drawn once per camera and cached
    pattern_s = time.perf_counter() - t0
    runs = [render(shape, stars, psf, camera, seed) for seed in range(args.repeats)]
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before anchor
    anchor_s = anchor(shape, stars, psf)
    mpix = ny * nx / 1e6
    record = {
        "bench": "sky", "version": __version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.machine(), "cpus": os.cpu_count(), "shape": [ny, nx],
        "stars": args.stars, "repeats": args.repeats, "seconds": round(median["total"], 3),
        "mpix_per_s": round(mpix / median["total"], 2),
        "stages_s": {k: round(v, 3) for k, v in median.items() if k != "total"},
        "fixed_pattern_s": round(pattern_s, 3), "anchor": "photutils.make_model_image",
        "anchor_stars_s": round(anchor_s, 3),
        "stars_speedup_vs_anchor": round(anchor_s / median["stars"], 1),
        "peak_rss_mb": round(peak_rss_mb, 1)}
    print(f"frame {nx}x{ny}, {args.stars} Moffat stars + sky + sCMOS: "
          f"{median['total']:.2f} s (median of {args.repeats}), "
          f"{record['mpix_per_s']} Mpix/s")
    print("  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in record["stages_s"].items()))
    print(f"  stars: ours {median['stars']:.2f} s, photutils {anchor_s:.2f} s "
          f"({record['stars_speedup_vs_anchor']}x); peak RSS {peak_rss_mb:.0f} MB")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_sky.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
