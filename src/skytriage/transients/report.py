"""HTML reports: cutout triplets of the candidates, and the evaluation's plots."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skytriage.report.html import HtmlReport, zscale_image

#: Most candidates shown as cutout triplets.
MAX_CUTOUTS = 24
_HALF = 16


def _cut(image: np.ndarray, x: float, y: float) -> np.ndarray:
    half = _HALF
    padded = np.pad(image, half)
    ix, iy = int(round(x)) + half, int(round(y)) + half
    return padded[iy - half:iy + half + 1, ix - half:ix + half + 1]


def triplet_figure(result, rows: pd.DataFrame, columns: int = 4) -> plt.Figure:
    """(reference, science, difference) cutouts, 33x33 px, of ``rows``, with their numbers."""
    prepared = result.prepared
    n = len(rows)
    n_rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(n_rows, 3 * columns, figsize=(1.3 * 3 * columns, 1.5 * n_rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    planes = (prepared.ref, prepared.sci, prepared.subtraction.diff)
    for k, (_, row) in enumerate(rows.iterrows()):
        r, c = divmod(k, columns)
        for j, (image, name) in enumerate(zip(planes, ("ref", "sci", "diff"), strict=True)):
            ax = axes[r, 3 * c + j]
            ax.imshow(zscale_image(_cut(image, row["x"], row["y"]), 64), cmap="gray",
                      origin="lower", interpolation="nearest")
            label = name if j else f"{name} {row.get('kind', 'candidate')}"
            ax.set_title(label, fontsize=6)
        score = "" if pd.isna(row["score"]) else f"p={row['score']:.2f} "
        axes[r, 3 * c + 1].text(0.5, -0.12, f"({row['x']:.1f}, {row['y']:.1f}) {score}"
                                f"S/N={row['snr']:.0f}", transform=axes[r, 3 * c + 1].transAxes,
                                ha="center", va="top", fontsize=6)
    fig.tight_layout()
    return fig


def overview_figure(result) -> plt.Figure:
    """The science image with the claimed transients marked by kind."""
    image = zscale_image(result.prepared.sci, 800)
    factor = max(result.prepared.sci.shape) / max(image.shape)
    fig, ax = plt.subplots(figsize=(7, 7 * image.shape[0] / image.shape[1]))
    ax.imshow(image, cmap="gray", origin="lower")
    colours = {"new": "tab:red", "brightening": "tab:orange", "fading": "tab:cyan"}
    for kind, colour in colours.items():
        rows = result.transients[result.transients["kind"] == kind]
        ax.scatter(rows["x"] / factor, rows["y"] / factor, s=60, facecolors="none",
                   edgecolors=colour, label=f"{kind} ({len(rows)})")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_axis_off()
    return fig


def write_report(result, path: str | os.PathLike) -> Path:
    """``report.html``: numbers, the overview, cutout triplets of claims and rejects."""
    report = HtmlReport("skytriage transients")
    meta = result.meta
    report.paragraph(f"{len(result.transients)} transients claimed out of "
                     f"{len(result.candidates)} candidates. Zero point: "
                     f"{meta['zero_point']} ({meta['zero_point_source']}); "
                     f"{meta['photometry']}. Alignment: {meta['alignment']} "
                     f"({meta['alignment_stars']} stars). Subtraction: {meta['method']}.")
    report.heading("Claimed transients")
    report.figure(overview_figure(result), "science image; circles: claimed transients")
    if len(result.transients):
        report.table(result.transients.head(200))
        shown = result.transients.head(MAX_CUTOUTS)
        report.figure(triplet_figure(result, shown), "reference, science, difference")
    rejected = result.candidates[~result.candidates["claimed"]]
    if len(rejected):
        report.heading("Rejected candidates (highest S/N first)")
        report.figure(triplet_figure(result, rejected.head(MAX_CUTOUTS // 2)),
                      "candidates the CNN called bogus")
    return report.write(path)


def polar_figure(rows: pd.DataFrame) -> plt.Figure:
    """Position errors of the full method in polar form (angle, distance in px)."""
    found = rows[(rows["method"] == "full") & rows["found"]]
    fig = plt.figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot(projection="polar")
    ax.scatter(np.arctan2(found["dy"], found["dx"]), found["distance"], s=6,
               c=np.log10(found["snr"]), cmap="viridis")
    ax.set_rmax(min(3.0, max(0.5, float(found["distance"].quantile(0.99))))
                if len(found) else 1.0)
    ax.set_title("position error (px), colour: log10 S/N", fontsize=9)
    return fig


def completeness_figure(table: pd.DataFrame) -> plt.Figure:
    """Completeness against S/N, one line per method."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method, part in table.groupby("method"):
        ax.plot(range(len(part)), part["mean"], marker="o", label=method)
        ax.set_xticks(range(len(part)), part["snr"], rotation=30, fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("S/N bin")
    ax.set_ylabel("completeness")
    ax.legend(fontsize=8)
    return fig


def distance_figure(rows: pd.DataFrame) -> plt.Figure:
    """Distance of the full method's positions against S/N and edge distance."""
    found = rows[(rows["method"] == "full") & rows["found"]]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].scatter(found["snr"], found["distance"], s=5)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("S/N")
    axes[1].scatter(found["edge_distance"], found["distance"], s=5)
    axes[1].set_xlabel("distance to the edge (px)")
    for ax in axes:
        ax.set_ylabel("position error (px)")
    fig.tight_layout()
    return fig


def evaluation_report(evaluation, path: str | os.PathLike) -> Path:
    """``evaluation.html``: headline table, curves, polar plot, robustness."""
    report = HtmlReport("skytriage transients: evaluation")
    summary = evaluation.summary
    headline = pd.DataFrame({m: summary[m] for m in summary if isinstance(summary[m], dict)})
    report.table(headline.reset_index(names="metric"))
    tables = evaluation.tables()
    report.figure(completeness_figure(tables["completeness_vs_snr"]), "completeness vs S/N")
    for name in ("completeness_vs_delta_mag", "distance_vs_delta_mag", "distance_vs_edge",
                 "completeness_vs_edge"):
        report.heading(name.replace("_", " "))
        report.table(tables[name])
    report.figure(polar_figure(evaluation.rows), "position errors, full method")
    report.figure(distance_figure(evaluation.rows), "position error vs S/N and edge distance")
    if len(evaluation.robustness):
        report.heading("Robustness over the five augmentations")
        report.paragraph(f"median per-source position spread: "
                         f"{summary['augmentation_spread_px_median']:.3f} px; median score "
                         f"spread: {summary['augmentation_score_spread_median']:.3f}")
    return report.write(path)
