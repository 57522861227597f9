"""Benchmark: reading a uint16 (int16 + BZERO = 32768) frame, skytriage vs astropy.

Writes one random uint16 frame to a temporary folder and times, median of ``--repeat``
runs with the file in the page cache (so decoding is measured, not the disk):

- ``skytriage_uint16``: ``read_frame(path, dtype=None)`` (raw-byte fast path, uint16);
- ``skytriage_float32``: ``read_frame(path)`` (fast path straight to float32);
- ``astropy_getdata``: ``fits.getdata(path)``, astropy's scaled read (uint16), the anchor;
- ``astropy_getdata_float32``: the same, cast to float32 (compare with skytriage_float32);
- ``astropy_noscale_manual``: ``do_not_scale_image_data=True`` and a numpy conversion.

Prints Mpix/s, the speed-up over ``astropy_getdata`` and the peak memory each method
allocates (tracemalloc, in a separate untimed run), and appends one JSON line to
``<out>/bench_io.jsonl``.

Usage: ``python benchmarks/bench_io.py [--size 9576x6388] [--out bench-output]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import astropy
import numpy as np
from astropy.io import fits

import skytriage
from skytriage.io import read_frame

ANCHOR = "astropy_getdata"


def _astropy_noscale_manual(path: str) -> np.ndarray:
    """astropy's unscaled read (memory-mapped int16) converted to uint16 with numpy."""
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        out = hdul[0].data.astype(np.uint16)  # int16 -> uint16 wraps modulo 2**16
    out ^= 0x8000  # + 32768 modulo 2**16
    return out


def _methods() -> dict[str, Callable[[str], np.ndarray]]:
    return {
        "skytriage_uint16": lambda path: read_frame(path, dtype=None).data,
        "skytriage_float32": lambda path: read_frame(path).data,
        ANCHOR: fits.getdata,
        "astropy_getdata_float32": lambda path: fits.getdata(path).astype(np.float32),
        "astropy_noscale_manual": _astropy_noscale_manual,
    }


def _parse_size(text: str) -> tuple[int, int]:
    """``"WIDTHxHEIGHT"`` -> ``(width, height)``."""
    width, height = (int(part) for part in text.lower().split("x"))
    return width, height


def _time(func: Callable[[str], np.ndarray], path: str, repeat: int) -> float:
    """Median wall-clock seconds of ``func(path)`` over ``repeat`` runs (after one warm-up)."""
    func(path)
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func(path)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


def _peak_mib(func: Callable[[str], np.ndarray], path: str) -> float:
    """Peak memory allocated (tracemalloc, MiB) while ``func(path)`` runs."""
    tracemalloc.start()
    try:
        func(path)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def run(width: int, height: int, repeat: int) -> dict:
    """Write the test frame, check every method reads the same pixels, time them."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 65536, size=(height, width), dtype=np.uint16)
    data.flat[0], data.flat[-1] = 0, 65535
    mpix = data.size / 1e6
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "frame.fits")
        fits.writeto(path, data)
        for name, func in _methods().items():
            np.testing.assert_array_equal(func(path), data, err_msg=name)
            seconds = _time(func, path, repeat)
            results[name] = {"seconds": seconds, "mpix_per_s": mpix / seconds,
                             "peak_mib": _peak_mib(func, path)}
    for result in results.values():
        result["speedup_vs_astropy"] = results[ANCHOR]["seconds"] / result["seconds"]
    return {
        "bench": "io_read_uint16_bzero",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": [width, height],
        "mpix": mpix,
        "repeat": repeat,
        "anchor": ANCHOR,
        "results": results,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "python": platform.python_version()},
        "versions": {"skytriage": skytriage.__version__, "numpy": np.__version__,
                     "astropy": astropy.__version__},
    }


def _print(record: dict) -> None:
    width, height = record["size"]
    print(f"uint16 frame {width}x{height} ({record['mpix']:.1f} Mpix), "
          f"median of {record['repeat']}, warm page cache")
    print(f"{'method':24s} {'ms':>8s} {'Mpix/s':>8s} {'x astropy':>10s} {'peak MiB':>9s}")
    for name, r in record["results"].items():
        print(f"{name:24s} {r['seconds'] * 1e3:8.1f} {r['mpix_per_s']:8.0f} "
              f"{r['speedup_vs_astropy']:10.2f} {r['peak_mib']:9.1f}")
    print(f"process max RSS: {record['max_rss_mib']:.0f} MiB")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="9576x6388", help="WIDTHxHEIGHT in pixels")
    parser.add_argument("--out", default="bench-output", help="folder for bench_io.jsonl")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method")
    args = parser.parse_args(argv)
    record = run(*_parse_size(args.size), repeat=args.repeat)
    _print(record)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_io.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return record


if __name__ == "__main__":
    main()
