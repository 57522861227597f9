"""The preview report: which frames are anomalous, why, and what they look like."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skytriage.errors import SkytriageInputError
from skytriage.io import read_frame
from skytriage.preview.detect import LABELS
from skytriage.preview.features import frame_overlays
from skytriage.report import HtmlReport, zscale_image

if TYPE_CHECKING:
    from skytriage.preview.pipeline import PreviewResult

# The study's figures (number of blobs, Laplacian max, anomaly score against frame index)
# plus the features that carry each class.
TIME_SERIES_FEATURES = ("anomaly_score", "n_blobs", "lap_max", "median", "fwhm", "ellipticity",
                        "bkg_structure", "line_snr", "row_peak")
MAX_THUMBNAILS = 12
MAX_DATASET_PLOTS = 12
_COLOURS = dict(zip(LABELS, plt.get_cmap("tab10").colors, strict=False))


def overview_table(frames: pd.DataFrame) -> pd.DataFrame:
    """Frames, anomalies and frames per label, one row per dataset."""
    per_label = pd.crosstab(frames["dataset"], frames["label"])
    table = frames.groupby("dataset", sort=False).agg(frames=("frame", "size"),
                                                      anomalies=("is_anomaly", "sum"))
    return table.join(per_label).fillna(0).reset_index()


def score_figure(frames: pd.DataFrame) -> plt.Figure:
    """Anomaly score (classifier probability of any anomaly) against frame index, one panel
    per dataset, points coloured by label."""
    names = list(dict.fromkeys(frames["dataset"]))[:MAX_DATASET_PLOTS]
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.9 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        rows = frames[frames["dataset"] == name]
        ax.plot(rows["frame"], rows["anomaly_score"], color="0.7", lw=0.8, zorder=1)
        for label, group in rows.groupby("label"):
            ax.scatter(group["frame"], group["anomaly_score"], s=14, label=label,
                       color=_COLOURS.get(label, "k"), zorder=2)
        ax.axhline(0.5, color="r", ls="--", lw=0.8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("p(anomaly)")
        ax.set_title(name, fontsize=9, loc="left")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.02))
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
    """Zscaled thumbnails of the most anomalous frames (at most 12) with the detected
    streaks (red) and the 200 brightest blobs (cyan) drawn on them."""
    top = frames[frames["is_anomaly"]].sort_values("anomaly_score", ascending=False,
                                                   kind="stable").head(MAX_THUMBNAILS)
    if top.empty:
        return None
    cols = min(4, len(top))
    rows = int(np.ceil(len(top) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (_, row) in zip(axes.ravel(), top.iterrows(), strict=False):
        title = f"{row['dataset']} #{row['frame']}: {row['labels']}"
        try:
            data = read_frame(row["path"], dtype=None).data
        except SkytriageInputError as err:
            ax.set_title(f"{title}\nnot readable: {err.cause}", fontsize=7, wrap=True)
            continue
        thumb = zscale_image(data, 256)
        scale = thumb.shape[1] / data.shape[1]
        ax.imshow(thumb, cmap="gray", origin="lower")
        found = frame_overlays(data, max_blobs=200)
        for x0, y0, x1, y1 in found["streaks"]:
            ax.plot([x0 * scale, x1 * scale], [y0 * scale, y1 * scale], color="r", lw=0.8)
        if found["blobs"]:
            blobs = np.asarray(found["blobs"])
            ax.scatter(blobs[:, 0] * scale, blobs[:, 1] * scale, s=6, facecolors="none",
                       edgecolors="c", linewidths=0.4)
        ax.set_xlim(0, thumb.shape[1])
        ax.set_ylim(0, thumb.shape[0])
        ax.set_title(f"{title}\np(anomaly) {row['anomaly_score']:.2f}", fontsize=8)
    fig.tight_layout()
    return fig


def roc_figure(roc: dict) -> plt.Figure:
    """ROC curves of the anomaly scores against truth."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, curve in roc.items():
        ax.plot(curve["fpr"], curve["tpr"], label=name)
    ax.plot([0, 1], [0, 1], color="0.7", ls=":")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def _evaluation_section(report: HtmlReport, evaluation) -> None:
    summary = evaluation.summary
    report.heading("Evaluation against truth")
    report.paragraph(f"{summary['frames']} frames, {summary['anomalous']} anomalous. "
                     f"Classifier any-anomaly precision {summary['any_precision']:.3f}, "
                     f"recall {summary['any_recall']:.3f}, F1 {summary['any_f1']:.3f}; "
                     f"macro-F1 over the classes {summary['macro_f1']:.3f}.")
    report.table(evaluation.detectors)
    if evaluation.roc:
        report.figure(roc_figure(evaluation.roc), "ROC of each anomaly score.")
    report.paragraph("Per class (multi-label):")
    report.table(evaluation.classes)
    report.paragraph("Confusion matrix of the dominant label (rows: truth):")
    report.table(evaluation.confusion.reset_index())
    report.paragraph("Welch t-tests (class vs normal frames), the 15 features that best "
                     "separate any anomaly:")
    report.table(evaluation.ttests.head(15), float_format="{:.3g}")


def write_report(result: PreviewResult, path: str | os.PathLike, evaluation=None) -> Path:
    """Write the HTML report of a preview run (with the evaluation when given)."""
    frames = result.frames
    report = HtmlReport("skytriage preview")
    n_bad = int(frames["is_anomaly"].sum()) if len(frames) else 0
    n_sets = frames["dataset"].nunique() if len(frames) else 0
    report.paragraph(f"{len(frames)} frames in {n_sets} datasets; {n_bad} anomalous; "
                     f"{len(result.failed)} inputs failed; {len(result.flagged)} frames "
                     f"flagged. Classifier: {result.model_card.get('command', 'shipped')}.")
    if len(frames):
        report.heading("Datasets")
        report.table(overview_table(frames))
        report.heading("Anomaly score per frame")
        report.figure(score_figure(frames), "Classifier probability of any anomaly; "
                                            "dashed: decision threshold.")
        thumbs = thumbnail_figure(frames)
        if thumbs is not None:
            report.heading("Most anomalous frames")
            report.figure(thumbs, "zscale stretch; red: detected streaks; cyan: blobs.")
        if evaluation is not None:
            _evaluation_section(report, evaluation)
        report.heading("Feature time series")
        for name in list(dict.fromkeys(frames["dataset"]))[:MAX_DATASET_PLOTS]:
            report.figure(feature_figure(frames, name), f"{name}: red points are anomalous.")
        report.heading("Anomalous frames")
        report.table(frames.loc[frames["is_anomaly"], ["path", "dataset", "frame",
                                                       "anomaly_score", "labels", "reason"]])
    if result.flagged:
        report.heading("Frames kept out of the dataset medians")
        report.table(pd.DataFrame(result.flagged))
    if result.failed:
        report.heading("Inputs that failed")
        report.table(pd.DataFrame(result.failed))
    return report.write(path)
