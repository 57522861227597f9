"""crmask against its peers: same images, same run, each tool in its own process.

    python benchmarks/bench_crmask.py [--size 4096] [--density 0.01] [--out bench-output]
        [--methods skytriage-unet,skytriage-lacosmic,astroscrappy,deepcr-acs-wfc,...]
        [--real .cache/real-data] [--figures docs/images]

1. Simulates one exposure of SIZE² px (seed 424242, never trained on) with the given
   cosmic-ray pixel density (``skytriage simulate crmask``), once; reruns reuse it.
2. Runs every method in a fresh process: seconds to make the mask, peak resident memory
   above what the process held before the call (image, model and library loaded), and
   the quality figures of ``crmask evaluate`` (F1, recall by star region, false cores).
3. With ``--real``: runs every method on the real frames that installed packages carry
   (astroscrappy's GMOS-S cut-out with two real cosmic rays, ccdproc's raw SAAO frame),
   counts what each flags, and draws the masks side by side.

Appends one JSON line per run to ``OUT/bench_crmask.jsonl`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_METHODS = ("skytriage-unet,skytriage-lacosmic,astroscrappy,deepcr-acs-wfc,"
                   "cosmic-conn-ground,cosmic-conn-hst")
GMOS_COSMIC_RAYS = ((slice(41, 72), slice(142, 161)), (slice(117, 147), slice(35, 43)))
"""Boxes of the two real cosmic rays in gmos.fits (from astroscrappy's own test)."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(method: str, path: str) -> dict:
    """Mask one simulated exposure with one method; time, memory and quality."""
    import torch

    from skytriage.crmask.evaluate import evaluate_mask, load_truth, pooled
    from skytriage.crmask.peers import MASKERS

    torch.set_num_threads(2)
    truth = load_truth(path)
    masker = MASKERS[method]()
    options = {"gain": truth.gain, "readnoise": truth.readnoise, "saturation": truth.saturation}
    small = truth.image[:256, :256].copy()
    masker(small, **options)  # load weights and libraries before measuring
    before = peak_rss_mb()
    t0 = time.perf_counter()
    mask, score = masker(truth.image, **options)
    seconds = time.perf_counter() - t0
    extra = peak_rss_mb() - before
    row, _ = evaluate_mask(method, mask, score, truth)
    import pandas as pd

    line = pooled(pd.DataFrame([row])).iloc[0].to_dict()
    return {**line, "seconds": seconds, "extra_memory_mb": max(extra, 0.0),
            "mpix": truth.image.size / 1e6}


def run_worker(method: str, path: Path) -> dict:
    """Run :func:`worker` in a fresh interpreter (so memory peaks do not mix)."""
    result = subprocess.run([sys.executable, __file__, "--worker", method, str(path)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode:
        return {"method": method, "error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def simulate(out: Path, size: int, density: float) -> Path:
    """The benchmark exposure (cached)."""
    folder = out / f"crmask_{size}_{density:g}"
    path = folder / "crmask_424242.fits"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "skytriage", "simulate", "crmask", "--out",
                        str(folder), "--seed", "424242", "--images", "1", "--size",
                        f"{size}x{size}", "--density", f"{density},{density}"], check=True)
    return path


def markdown(rows: list[dict]) -> str:
    """The results as a Markdown table."""
    head = ("| method | F1 | F1 clear | precision | recall | recall 10×rms | recall 160×rms "
            "| false cores | s per image | MB extra |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error']} ||||||||| ")
            continue
        lines.append(f"| {r['method']} | {r['f1']:.3f} | {r['f1_clear']:.3f} | "
                     f"{r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['recall_10rms']:.3f} | {r['recall_160rms']:.3f} | "
                     f"{r['false_core_rate']:.4f} | {r['seconds']:.1f} | "
                     f"{r['extra_memory_mb']:.0f} |")
    return "\n".join(lines)


def real_frames(folder: Path, methods: list[str], figures: Path | None) -> list[dict]:
    """Every method on gmos.fits and a8280271.fits: what each flags (and a figure)."""
    from astropy.io import fits
    from scipy import ndimage

    from skytriage.crmask.peers import MASKERS
    from skytriage.io import read_frame

    frames = {
        "gmos.fits (Gemini GMOS-S)": (fits.getdata(folder / "gmos.fits", "SCI")
                                      .astype(np.float32), 1.933, 4.24, None),
        "a8280271.fits (SAAO, raw)": (read_frame(folder / "a8280271.fits").data, 1.9, 5.0,
                                      None),
    }
    rows, panels = [], {}
    for name, (image, gain, readnoise, saturation) in frames.items():
        masks = {}
        for method in methods:
            try:
                mask, _ = MASKERS[method]()(image, gain=gain, readnoise=readnoise,
                                            saturation=saturation)
            except Exception as err:  # a peer that fails on real data is a result too
                rows.append({"frame": name, "method": method, "error": str(err)[:120]})
                continue
            mask = np.asarray(mask, bool)
            _, regions = ndimage.label(mask, np.ones((3, 3)))
            row = {"frame": name, "method": method, "flagged_pixels": int(mask.sum()),
                   "regions": int(regions)}
            if name.startswith("gmos"):
                row["real_crs_found"] = sum(bool(mask[box].any()) for box in GMOS_COSMIC_RAYS)
                inside = np.zeros_like(mask)
                for box in GMOS_COSMIC_RAYS:
                    inside[box] = True
                row["flagged_outside_cr_boxes"] = int((mask & ~inside).sum())
            rows.append(row)
            masks[method] = mask
        panels[name] = (image, masks)
    if figures is not None:
        _real_figure(panels, figures / "crmask_real.png")
    return rows


def _real_figure(panels: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skytriage.report.html import zscale_image

    methods = list(next(iter(panels.values()))[1])
    fig, axes = plt.subplots(len(panels), len(methods) + 1,
                             figsize=(2.4 * (len(methods) + 1), 2.3 * len(panels)))
    for row, (name, (image, masks)) in zip(axes, panels.items(), strict=True):
        shown = zscale_image(image, max_side=max(image.shape))
        row[0].imshow(shown, cmap="gray", origin="lower")
        row[0].set_title(name, fontsize=8)
        for ax, method in zip(row[1:], methods, strict=True):
            ax.imshow(shown, cmap="gray", origin="lower")
            if method in masks:
                overlay = np.zeros((*image.shape, 4))
                overlay[masks[method]] = (1, 0, 0, 0.8)
                ax.imshow(overlay, origin="lower")
            ax.set_title(f"{method}: {int(masks.get(method, np.zeros(1)).sum())} px", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    parser.add_argument("--real", type=Path, default=None)
    parser.add_argument("--figures", type=Path, default=None)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "PATH"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = simulate(args.out, args.size, args.density)
    rows = [run_worker(method, path) for method in methods]
    record = {"size": args.size, "density": args.density, "rows": rows}
    if args.real is not None:
        record["real"] = real_frames(args.real, methods, args.figures)
    with open(args.out / "bench_crmask.jsonl", "a") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
    print(markdown(rows))
    for row in record.get("real", []):
        print(row)


if __name__ == "__main__":
    main()
