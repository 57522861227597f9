"""The preview report: which frames are anomalous, why, and what they look like."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skytriage.io import read_frame
from skytriage.preview.detect import LABELS
from skytriage.report import HtmlReport, zscale_image

if TYPE_CHECKING:
    from skytriage.preview.pipeline import PreviewResult

TIME_SERIES_FEATURES = ("median", "sigma", "lap_var", "bkg_structure", "pct_mid", "row_peak")
MAX_THUMBNAILS = 12
MAX_DATASET_PLOTS = 12
_COLOURS = dict(zip(LABELS, plt.get_cmap("tab10").colors, strict=False))


def overview_table(frames: pd.DataFrame) -> pd.DataFrame:
    """Frames, anomalies and frames per label, one row per dataset."""
    per_label = pd.crosstab(frames["dataset"], frames["label"])
    table = frames.groupby("dataset", sort=False).agg(frames=("frame", "size"),
                                                      anomalies=("is_anomaly", "sum"))
    return table.join(per_label).fillna(0).reset_index()


def score_figure(frames: pd.DataFrame, threshold: float) -> plt.Figure:
    """Anomaly score against frame index, one panel per dataset, points coloured by label."""
    names = list(dict.fromkeys(frames["dataset"]))[:MAX_DATASET_PLOTS]
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.9 * len(names)), squeeze=False,
                             sharex=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        rows = frames[frames["dataset"] == name]
        ax.plot(rows["frame"], rows["anomaly_score"], color="0.7", lw=0.8, zorder=1)
        for label, group in rows.groupby("label"):
            ax.scatter(group["frame"], group["anomaly_score"], s=14, label=label,
                       color=_COLOURS.get(label, "k"), zorder=2)
        ax.axhline(threshold, color="r", ls="--", lw=0.8)
        ax.set_yscale("symlog", linthresh=threshold)
        ax.set_ylabel("score")
        ax.set_title(name, fontsize=9, loc="left")
        ax.legend(fontsize=7, ncol=5, loc="upper right")
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    return fig


def feature_figure(frames: pd.DataFrame, dataset: str) -> plt.Figure:
    """Feature time series of one dataset, anomalous frames marked in red."""
    rows = frames[frames["dataset"] == dataset]
    names = [f for f in TIME_SERIES_FEATURES if f in rows]
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.3 * len(names)), sharex=True,
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        ax.plot(rows["frame"], rows[name], lw=0.9)
        bad = rows[rows["is_anomaly"]]
        ax.scatter(bad["frame"], bad[name], color="r", s=10, zorder=3)
        ax.set_ylabel(name, fontsize=8)
    axes[-1, 0].set_xlabel("frame")
    fig.suptitle(dataset, fontsize=9, x=0.02, ha="left")
    fig.tight_layout()
    return fig


def thumbnail_figure(frames: pd.DataFrame) -> plt.Figure | None:
    """Zscaled thumbnails of the most anomalous frames (at most 12)."""
    top = frames[frames["is_anomaly"]].nlargest(MAX_THUMBNAILS, "anomaly_score")
    if top.empty:
        return None
    cols = min(4, len(top))
    rows = int(np.ceil(len(top) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row) in zip(axes.ravel(), top.iterrows(), strict=False):
        ax.imshow(zscale_image(read_frame(row["path"], dtype=None).data, 256),
                  cmap="gray", origin="lower")
        ax.set_title(f"{row['dataset']} #{row['frame']}: {row['labels']}\n"
                     f"score {row['anomaly_score']:.1f}", fontsize=8)
    fig.tight_layout()
    return fig


def write_report(result: PreviewResult, path: str | os.PathLike) -> Path:
    """Write the HTML report of a preview run and return its path."""
    frames = result.frames
    report = HtmlReport("skytriage preview")
    n_bad = int(frames["is_anomaly"].sum()) if len(frames) else 0
    report.paragraph(f"{len(frames)} frames in {frames['dataset'].nunique() if len(frames) else 0}"
                     f" datasets; {n_bad} anomalous (robust z > {result.threshold:g});"
                     f" {len(result.failed)} inputs failed.")
    if len(frames):
        report.heading("Datasets")
        report.table(overview_table(frames))
        report.heading("Anomaly score per frame")
        report.figure(score_figure(frames, result.threshold),
                      "Largest robust z-score of any feature within the dataset (linear up to "
                      "the threshold, dashed, logarithmic above).")
        thumbs = thumbnail_figure(frames)
        if thumbs is not None:
            report.heading("Most anomalous frames")
            report.figure(thumbs, "zscale stretch; title: dataset, frame, labels, score.")
        report.heading("Feature time series")
        for name in list(dict.fromkeys(frames["dataset"]))[:MAX_DATASET_PLOTS]:
            report.figure(feature_figure(frames, name), f"{name}: red points are anomalous.")
        report.heading("Anomalous frames")
        report.table(frames.loc[frames["is_anomaly"], ["path", "dataset", "frame",
                                                       "anomaly_score", "label", "labels"]])
    if result.failed:
        report.heading("Inputs that failed")
        report.table(pd.DataFrame(result.failed))
    return report.write(path)
