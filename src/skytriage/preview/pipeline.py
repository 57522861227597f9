"""``skytriage.preview.run``: measure every frame, compare it with its dataset, classify it.

Frames are read and measured in parallel (one task per file); each finished frame is
appended to a cache in the output folder, so an interrupted run resumes where it stopped
and a rerun only measures new or changed files. Then, per dataset, features get their
dataset-relative twins, the outlier detectors run, and the classifier names the anomaly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skytriage.io import find_datasets, read_frame, write_csv, write_parquet
from skytriage.parallel import Outcome, map_inputs
from skytriage.preview.detect import ANOMALY_CLASSES, ROBUST_Z_THRESHOLD, outlier_columns
from skytriage.preview.features import FEATURE_VERSION, add_relative_features, frame_features
from skytriage.preview.model import ANY, FrameClassifier, decide

CONTRACT_COLUMNS = ["path", "dataset", "frame", "anomaly_score", "is_anomaly", "label", "labels"]
# Columns that :func:`score` writes: dropped to get back the measured features of a result.
DECISION_COLUMNS = {
    "anomaly_score", "is_anomaly", "label", "labels", "reason", "robust_z", "dbscan_outlier",
    "iforest_score", "iforest_outlier", "dbscan_outlier_all", "iforest_outlier_all",
    f"p_{ANY}", *(f"p_{c}" for c in ANOMALY_CLASSES)}
CACHE_NAME = ".cache/features.jsonl"
SATURATED_PERCENT = 20.0
# A frame the classifier calls normal is still anomalous when every outlier detector
# agrees it is extreme: something the classifier never saw.
OUTLIER_OVERRIDE_Z = 3 * ROBUST_Z_THRESHOLD


def measure_frame(path: str) -> dict[str, float | str | None]:
    """Read one frame and return its features plus ``exptime`` (s), ``date_obs`` (ISO),
    ``height`` and ``width`` (px)."""
    frame = read_frame(path, dtype=None)
    features: dict[str, float | str | None] = frame_features(frame.data)
    features["exptime"] = frame.meta.exptime
    features["date_obs"] = frame.meta.date_obs
    features["height"], features["width"] = frame.data.shape
    return features


def _file_key(path: str) -> str:
    """Identity of a file's content for the cache: absolute path, size, mtime, feature set."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|v{FEATURE_VERSION}"


class FeatureCache:
    """Append-only JSON-lines store of measured frames, keyed by :func:`_file_key`."""

    def __init__(self, path: Path | None):
        self.path = path
        self.rows: dict[str, dict] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interruption
                    continue
                self.rows[entry["key"]] = entry["features"]

    def get(self, key: str) -> dict | None:
        """The cached features of a file, if its content is unchanged."""
        return self.rows.get(key)

    def add(self, key: str, features: dict) -> None:
        """Remember ``features`` and append them to the file at once."""
        self.rows[key] = features
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": key, "features": features}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


@dataclass
class Measurement:
    """Features of every usable frame, before any decision.

    Attributes
    ----------
    table : DataFrame
        ``path, dataset, frame``, the features, their ``rel_`` twins, ``exptime``,
        ``date_obs``, ``height``, ``width``.
    failed : list of dict
        ``{path, error}`` for inputs that could not be used.
    flagged : list of dict
        ``{path, reason}`` for frames measured but kept out of the dataset medians.
    """

    table: pd.DataFrame
    failed: list[dict[str, str]] = field(default_factory=list)
    flagged: list[dict[str, str]] = field(default_factory=list)


@dataclass
class PreviewResult:
    """What preview found.

    Attributes
    ----------
    frames : DataFrame
        One row per measured frame: the contract columns of DESIGN.md, the outlier
        evidence, the class probabilities ``p_*``, then every feature.
    failed : list of dict
        ``{path, error}`` for every input that could not be used.
    flagged : list of dict
        ``{path, reason}`` for frames kept out of the dataset medians (saturated, ...).
    model_card : dict
        The card of the classifier that labelled the frames.
    """

    frames: pd.DataFrame
    failed: list[dict[str, str]] = field(default_factory=list)
    flagged: list[dict[str, str]] = field(default_factory=list)
    model_card: dict = field(default_factory=dict)

    def write(self, out_dir: str | os.PathLike, evaluation=None) -> dict[str, Path]:
        """Write ``frames.parquet``, ``frames.csv`` and ``report.html`` into ``out_dir``."""
        from skytriage.preview.report import write_report

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"frames.parquet": out / "frames.parquet", "frames.csv": out / "frames.csv"}
        write_parquet(paths["frames.parquet"], self.frames)
        write_csv(paths["frames.csv"], self.frames)
        paths["report.html"] = write_report(self, out / "report.html", evaluation)
        return paths


def measure(
    inputs: Sequence[str | os.PathLike],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Measurement:
    """Measure every frame of the given files and folders (see :func:`run`)."""
    datasets, errors = find_datasets(inputs)
    failed = [{"path": err.path, "error": err.cause} for err in errors]
    cache = FeatureCache(Path(cache_dir) / CACHE_NAME if cache_dir is not None else None)
    jobs = [(ds.name, i, p) for ds in datasets for i, p in enumerate(ds.paths)]
    keys, todo = {}, []
    for _, _, path in jobs:
        try:
            keys[path] = _file_key(path)
        except OSError as err:
            failed.append({"path": path, "error": f"cannot stat: {err.strerror}"})
            continue
        if cache.get(keys[path]) is None:
            todo.append(path)

    def remember(outcome: Outcome) -> None:
        if outcome.ok:
            cache.add(keys[outcome.item], outcome.value)

    for outcome in map_inputs(measure_frame, todo, workers=workers, scheduler=scheduler,
                              progress=progress, description="preview", on_outcome=remember):
        if not outcome.ok:
            failed.append({"path": outcome.item, "error": outcome.error})
    rows = [{"path": p, "dataset": name, "frame": i, **cache.get(keys[p])}
            for name, i, p in jobs if p in keys and cache.get(keys[p]) is not None]
    table = pd.DataFrame(rows)
    if table.empty:
        return Measurement(table, failed)
    table, odd_shape = _drop_odd_shapes(table)
    failed.extend(odd_shape)
    saturated = table["pct_saturated"] > SATURATED_PERCENT
    flagged = [{"path": p, "reason": f"saturated: {s:.0f}% of pixels at the maximum level"}
               for p, s in zip(table.loc[saturated, "path"],
                               table.loc[saturated, "pct_saturated"], strict=True)]
    table = add_relative_features(table, reference=~saturated)
    return Measurement(table, failed, flagged)


def _drop_odd_shapes(table: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Remove frames whose shape differs from their dataset's most common shape."""
    shape = table["height"].astype(str) + "x" + table["width"].astype(str)
    usual = shape.groupby(table["dataset"]).transform(lambda s: s.mode().iloc[0])
    odd = shape != usual
    failed = [{"path": p, "error": f"shape {h}x{w} (height x width) differs from the "
                                   f"dataset's {u}"}
              for p, h, w, u in zip(table.loc[odd, "path"], table.loc[odd, "height"],
                                    table.loc[odd, "width"], usual[odd], strict=True)]
    return table[~odd].reset_index(drop=True), failed


# The features that speak for each class, shown as the reason of a decision.
REASON_FEATURES = {
    "satellite": ("line_snr", "n_lines", "line_len_max"),
    "slew": ("top_elong", "pct_elongated", "rel_n_blobs"),
    "tracking": ("ellipticity", "rel_ellipticity", "elong_coherence"),
    "cloud": ("bkg_structure", "rel_n_blobs", "rel_median"),
    "obstruction": ("edge_dark", "dark_area", "rel_n_blobs"),
    "defocus": ("fwhm", "psf_hollow", "rel_fwhm"),
    "background": ("rel_median", "bkg_gradient", "rel_n_blobs"),
    "camera": ("row_peak", "col_peak", "row_jump"),
}


def reasons(table: pd.DataFrame, labels: pd.Series) -> pd.Series:
    """Why each anomalous frame got its labels: the key features of every label."""
    out = []
    for (_, row), names in zip(table.iterrows(), labels, strict=True):
        parts = []
        for name in str(names).split(";"):
            keys = [k for k in REASON_FEATURES.get(name, ()) if k in row]
            if keys:
                parts.append(f"{name}: " + ", ".join(f"{k}={row[k]:.3g}" for k in keys))
        out.append("; ".join(parts))
    return pd.Series(out, index=table.index)


def score(table: pd.DataFrame, model: FrameClassifier,
          saturated: pd.Series | None = None) -> pd.DataFrame:
    """Add outlier evidence, class probabilities and the contract columns.

    ``reason`` names the key features of each label (:data:`REASON_FEATURES`) and their
    values. A frame is anomalous when the classifier says so, when it is saturated, or when all
    three outlier detectors agree and its robust z passes :data:`OUTLIER_OVERRIDE_Z`.
    ``anomaly_score`` is the classifier's probability of any anomaly, raised to 1 for
    frames the override catches.
    """
    outliers = outlier_columns(table)
    proba = model.predict_proba(table)
    decision = decide(proba, model.threshold)
    override = (outliers["robust_z"] > OUTLIER_OVERRIDE_Z) & outliers["dbscan_outlier"] & \
        outliers["iforest_outlier"]
    if saturated is not None:
        override |= saturated
    forced = override & ~decision["is_anomaly"]
    decision.loc[forced, "is_anomaly"] = True
    decision.loc[forced, "labels"] = decision.loc[forced, "label"] = (
        proba.loc[forced].drop(columns="p_any").idxmax(axis=1).str.removeprefix("p_"))
    score_column = proba["p_any"].where(~forced, 1.0)
    contract = pd.DataFrame({"path": table["path"], "dataset": table["dataset"],
                             "frame": table["frame"].astype(np.int64),
                             "anomaly_score": score_column.astype(np.float32)})
    contract = contract.join(decision)
    contract["reason"] = reasons(table, decision["labels"])
    rest = table.drop(columns=["path", "dataset", "frame"])
    return pd.concat([contract, outliers, proba, rest], axis=1).reset_index(drop=True)


def run(
    inputs: Sequence[str | os.PathLike],
    *,
    model: FrameClassifier | str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> PreviewResult:
    """Measure, compare and classify every frame of the given files and folders.

    Parameters
    ----------
    inputs : sequence of path
        FITS files and folders; a folder is a dataset, a folder of folders a night.
    model : FrameClassifier or path, optional
        The classifier; default the shipped one.
    workers, scheduler :
        Passed to :func:`skytriage.parallel.map_inputs`.
    cache_dir : path, optional
        Folder that keeps the feature cache (``.cache/features.jsonl``); reruns resume.
    progress : bool
        Draw a progress bar.
    """
    classifier = model if isinstance(model, FrameClassifier) else FrameClassifier.load(model)
    measured = measure(inputs, workers=workers, scheduler=scheduler, cache_dir=cache_dir,
                       progress=progress)
    if measured.table.empty:
        frames = pd.DataFrame(columns=CONTRACT_COLUMNS)
    else:
        saturated = measured.table["path"].isin({f["path"] for f in measured.flagged})
        frames = score(measured.table, classifier, saturated)
    return PreviewResult(frames, measured.failed, measured.flagged, classifier.card)


def rescore(result_dir: str | os.PathLike,
            model: FrameClassifier | str | os.PathLike | None = None) -> PreviewResult:
    """Decide again on a written result with another classifier, without re-reading frames.

    Rewrites ``frames.parquet``, ``frames.csv`` and ``report.html`` in ``result_dir``.
    """
    classifier = model if isinstance(model, FrameClassifier) else FrameClassifier.load(model)
    out = Path(result_dir)
    frames = pd.read_parquet(out / "frames.parquet")
    keep = [c for c in frames.columns if c not in DECISION_COLUMNS]
    table = frames[keep]
    saturated = table["pct_saturated"] > SATURATED_PERCENT
    result = PreviewResult(score(table, classifier, saturated), model_card=classifier.card)
    result.write(out)
    return result

