"""Plots and the HTML report of ``crmask evaluate``, and the mask-over-image picture."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skytriage.crmask.evaluate import FPR_POINTS, STAR_LEVELS, Evaluation, Truth
from skytriage.report.html import HtmlReport, figure_png, zscale_image


def recall_by_region_figure(table) -> bytes:
    """Recall of cosmic-ray pixels inside star regions of rising brightness, per method."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for _, line in table.iterrows():
        ax.plot(STAR_LEVELS, [line[f"recall_{k}rms"] for k in STAR_LEVELS], "o-",
                label=line["method"])
    ax.set_xscale("log")
    ax.set_xticks(STAR_LEVELS, [str(k) for k in STAR_LEVELS])
    ax.set_xlabel("star region: sources > k × background rms")
    ax.set_ylabel("cosmic-ray pixel recall")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def roc_figure(evaluation: Evaluation) -> bytes:
    """Detection rate against false-positive rate (first image), scored methods as curves,
    binary ones as points."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, (fpr, tpr) in evaluation.roc.items():
        ax.plot(fpr, tpr, label=name)
    first = evaluation.rows.groupby("method", sort=False).first()
    for name, row in first.iterrows():
        if name not in evaluation.roc:
            ax.plot([max(row["fpr"], 1e-6)], [row["recall"]], "s", label=f"{name} (binary)")
    for fpr in FPR_POINTS:
        ax.axvline(fpr, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlim(1e-6, 1)
    ax.set_xlabel("false-positive rate (non-cosmic-ray pixels flagged)")
    ax.set_ylabel("detection rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def contamination_figure(rows) -> bytes:
    """Share of stars with cosmic-ray pixels in the aperture against density."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    first = rows.drop_duplicates("image")
    ax.scatter(first["density"], first["stars_hit"] / first["stars"].clip(lower=1), c="k",
               marker="x", label="before masking")
    for method, group in rows.groupby("method", sort=False):
        ax.scatter(group["density"], group["stars_still_hit"] / group["stars"].clip(lower=1),
                   s=14, label=f"after {method}")
    ax.set_xscale("log")
    ax.set_xlabel("cosmic-ray pixel density")
    ax.set_ylabel("stars with cosmic-ray pixels in aperture")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


def photometry_figure(photometry) -> bytes:
    """Distribution of the relative aperture-flux error of stars hit by cosmic rays."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    methods = list(dict.fromkeys(photometry["method"]))
    raw = photometry.drop_duplicates(["image", "flux_true"])
    data = [np.abs((raw["flux_raw"] - raw["flux_true"]) / raw["flux_true"])]
    data += [np.abs(photometry.loc[photometry["method"] == m, "error"]) for m in methods]
    ax.boxplot([np.clip(d, 1e-5, None) for d in data], showfliers=False)
    ax.set_xticks(range(1, len(data) + 1), ["not cleaned", *methods], rotation=30, ha="right",
                  fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("|aperture flux error| / flux")
    ax.grid(alpha=0.3, axis="y")
    return figure_png(fig)


def masks_figure(image: np.ndarray, masks: dict[str, np.ndarray], box: tuple[slice, slice],
                 title: str = "") -> bytes:
    """The image and each mask in red over it, side by side, in one cut-out ``box``."""
    panels = len(masks) + 1
    fig, axes = plt.subplots(1, panels, figsize=(2.6 * panels, 2.9))
    cut = zscale_image(image[box])
    axes[0].imshow(cut, cmap="gray", origin="lower")
    axes[0].set_title(title or "image", fontsize=9)
    for ax, (name, mask) in zip(axes[1:], masks.items(), strict=True):
        ax.imshow(cut, cmap="gray", origin="lower")
        overlay = np.zeros((*cut.shape, 4))
        overlay[mask[box]] = (1, 0, 0, 0.6)
        ax.imshow(overlay, origin="lower")
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return figure_png(fig)


def busiest_star_box(truth: Truth, size: int = 64) -> tuple[slice, slice]:
    """A cut-out around the brightest unsaturated star that a cosmic ray hits."""
    ny, nx = truth.image.shape
    cosmic = truth.cosmic
    order = np.argsort(-np.asarray(truth.stars["peak"]))
    for k in order:
        x, y = int(truth.stars["x"][k] + 0.5), int(truth.stars["y"][k] + 0.5)
        y0, x0 = np.clip(y - size // 2, 0, ny - size), np.clip(x - size // 2, 0, nx - size)
        box = (slice(y0, y0 + size), slice(x0, x0 + size))
        near = (slice(max(y - 3, 0), y + 4), slice(max(x - 3, 0), x + 4))
        if cosmic[near].any() and truth.valid[box].all():
            return box
    return (slice(0, min(size, ny)), slice(0, min(size, nx)))


def write_report(evaluation: Evaluation, out_dir: str | os.PathLike,
                 figures_dir: str | os.PathLike | None = None) -> Path:
    """Write ``report.html`` with the pooled table and every plot; with ``figures_dir``,
    also each plot as ``crmask_<name>.png`` there (the README's pictures)."""
    table = evaluation.table()
    figures = {"recall_by_region": (recall_by_region_figure(table),
                                    "Recall within star regions")}
    if evaluation.roc:
        figures["roc"] = (roc_figure(evaluation),
                          "Detection rate against false-positive rate (first image)")
    figures["contamination"] = (contamination_figure(evaluation.rows),
                                "Contamination against density")
    if len(evaluation.photometry):
        figures["photometry"] = (photometry_figure(evaluation.photometry),
                                 "Photometric damage for stars hit by cosmic rays")
    if evaluation.example is not None:
        truth, masks = evaluation.example
        figures["masks"] = (masks_figure(truth.image, {"truth": truth.cosmic, **masks},
                                         busiest_star_box(truth)),
                            f"Masks around a star hit by a cosmic ray ({Path(truth.path).name})")
    report = HtmlReport("skytriage crmask evaluate")
    report.paragraph(f"{evaluation.rows['image'].nunique()} simulated exposures; saturated "
                     "pixels left out; star regions are where the noiseless sources exceed "
                     "k × the background rms.")
    report.heading("Pooled figures per method")
    report.table(table)
    for name, (png, caption) in figures.items():
        report.figure(png, caption)
        if figures_dir is not None:
            Path(figures_dir).mkdir(parents=True, exist_ok=True)
            (Path(figures_dir) / f"crmask_{name}.png").write_bytes(png)
    return report.write(Path(out_dir) / "report.html")
