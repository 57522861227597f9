"""The preview result the dashboard serves: ``frames.parquet``, its frame files, its labels.

Frame ids are the 0-based row numbers of ``frames.parquet``. The table is read once and
read again when the file changes on disk (after a retraining rewrote it), so every view
and every API answer sees the current scores.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skytriage.errors import SkytriageInputError
from skytriage.io.labels import LABELS, LabelStore

CONTRACT_COLUMNS = ("path", "dataset", "frame", "anomaly_score", "is_anomaly", "label", "labels")
TIME_FEATURE = "date_obs"


def resolve_frame_path(path: str, result_dir: Path) -> Path:
    """Where the file of a ``frames.parquet`` path lies, seen from this process.

    An absolute path is kept. A relative one (as given to preview, relative to the folder
    preview ran in) is tried against the current folder, then against the result
    folder's parent; when neither exists the first is returned.
    """
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate
    for base in (Path.cwd(), result_dir.parent):
        if (base / candidate).exists():
            return base / candidate
    return Path.cwd() / candidate


def feature_columns(frames: pd.DataFrame) -> list[str]:
    """The features of a result: every numeric column after the contract ones, and date_obs."""
    return [c for c in frames.columns[len(CONTRACT_COLUMNS):]
            if c == TIME_FEATURE or (pd.api.types.is_numeric_dtype(frames[c])
                                     and not pd.api.types.is_bool_dtype(frames[c]))]


def read_frames(parquet: Path) -> pd.DataFrame:
    """Read ``frames.parquet`` and check its contract columns.

    Raises
    ------
    SkytriageInputError
        When the file is missing, not Parquet, or lacks a contract column.
    """
    try:
        frames = pd.read_parquet(parquet)
    except (OSError, ValueError) as err:
        raise SkytriageInputError(parquet, f"not a preview result: {err}") from err
    missing = [c for c in CONTRACT_COLUMNS if c not in frames.columns]
    if missing:
        raise SkytriageInputError(parquet, f"lacks the columns {', '.join(missing)}")
    return frames.reset_index(drop=True)


def pca_embedding(frames: pd.DataFrame, features: list[str]) -> np.ndarray:
    """First two principal components of the standardised numeric features.

    Parameters
    ----------
    frames : DataFrame
        One row per frame.
    features : list of str
        Columns to use; non-numeric and constant ones are left out, missing values take
        the column median.

    Returns
    -------
    ndarray, shape (n_frames, 2)
        Coordinates in units of standard deviations (zeros when fewer than two usable
        features or frames).
    """
    numeric = frames[[f for f in features if pd.api.types.is_numeric_dtype(frames[f])]]
    values = numeric.astype(float).replace([np.inf, -np.inf], np.nan)
    values = values.fillna(values.median()).fillna(0.0).to_numpy()
    spread = values.std(axis=0)
    values = values[:, spread > 0]
    if values.shape[0] < 2 or values.shape[1] < 2:
        return np.zeros((len(frames), 2))
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    return u[:, :2] * s[:2] / np.sqrt(len(z))


class ResultData:
    """A preview result folder, its frames table (re-read when it changes) and frame files.

    Parameters
    ----------
    result_dir : path
        Folder holding ``frames.parquet``.

    Raises
    ------
    SkytriageInputError
        When the folder holds no readable ``frames.parquet``.
    """

    def __init__(self, result_dir: str | os.PathLike):
        self.result_dir = Path(result_dir).resolve()
        self.parquet = self.result_dir / "frames.parquet"
        self.cache_dir = self.result_dir / ".cache" / "dashboard"
        self._lock = threading.Lock()
        self._stamp: int | None = None
        self._frames = pd.DataFrame()
        self._files: list[Path] = []
        self._reload()

    def _reload(self) -> None:
        """Read ``frames.parquet`` again if it changed since the last read."""
        try:
            stamp = self.parquet.stat().st_mtime_ns
        except OSError as err:
            raise SkytriageInputError(self.parquet, "not a preview result: no frames.parquet"
                                      ) from err
        with self._lock:
            if stamp == self._stamp:
                return
            frames = read_frames(self.parquet)
            frames.insert(0, "id", np.arange(len(frames), dtype=np.int64))
            self._files = [resolve_frame_path(p, self.result_dir) for p in frames["path"]]
            self._frames, self._stamp = frames, stamp

    @property
    def frames(self) -> pd.DataFrame:
        """The current frames table, ``id`` (the row number) first; do not modify it."""
        self._reload()
        return self._frames

    def features(self) -> list[str]:
        """Feature columns of the current table (see :func:`feature_columns`)."""
        return feature_columns(self.frames.drop(columns="id"))

    def row(self, frame_id: int) -> pd.Series:
        """The row of one frame id; KeyError when there is none."""
        frames = self.frames
        if not 0 <= frame_id < len(frames):
            raise KeyError(f"no frame with id {frame_id} (ids are 0..{len(frames) - 1})")
        return frames.iloc[frame_id]

    def file(self, frame_id: int) -> Path:
        """The frame file of one frame id, resolved (see :func:`resolve_frame_path`)."""
        self.row(frame_id)
        return self._files[frame_id]

    def find(self, path: str, frame: int) -> int | None:
        """The id of the frame with this ``path`` and ``frame``, or None."""
        frames = self.frames
        hits = frames.index[(frames["path"] == path) & (frames["frame"] == frame)]
        return int(hits[0]) if len(hits) else None

    def datasets(self) -> list[str]:
        """Dataset names, in table order."""
        return list(dict.fromkeys(self.frames["dataset"]))


class RetrainBusy(RuntimeError):
    """A retraining is already running for this dashboard."""


@dataclass
class Dashboard:
    """Everything a request needs: the result and the label store."""

    data: ResultData
    labels: LabelStore
    _retraining: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def retrain(self) -> dict:
        """Retrain the classifier with the newest human labels and re-score the result.

        ``skytriage.preview.retrain_and_rescore`` rewrites ``frames.parquet``, which every
        view then reads again.

        Returns
        -------
        dict
            Its summary (``hand_labelled``, ``training_frames``, ``model``, ``anomalies``).

        Raises
        ------
        ValueError
            When no frame has a label yet.
        RetrainBusy
            When another retraining is running.
        """
        from skytriage.preview import retrain_and_rescore

        labels = self.labels.latest()[["path", "frame", "label"]]
        if labels.empty:
            raise ValueError("no labels yet: label some frames first")
        if not self._retraining.acquire(blocking=False):
            raise RetrainBusy("a retraining is already running")
        try:
            return retrain_and_rescore(self.data.result_dir, labels)
        finally:
            self._retraining.release()

    def overview(self) -> pd.DataFrame:
        """One row per dataset: frames, anomalies, human-labelled frames, frames per model label.

        Returns
        -------
        DataFrame
            Columns ``dataset, frames, anomalies, labelled`` and one per label of
            :data:`~skytriage.io.labels.LABELS` (how many frames the model gave it).
        """
        frames = self.data.frames
        table = frames.groupby("dataset", sort=False).agg(frames=("id", "size"),
                                                          anomalies=("is_anomaly", "sum"))
        per_label = pd.crosstab(frames["dataset"], frames["label"])
        table = table.join(per_label.reindex(columns=list(LABELS), fill_value=0)).fillna(0)
        labelled = self.with_human_labels(frames).dropna(subset="human_label")
        table["labelled"] = labelled.groupby("dataset").size().reindex(table.index).fillna(0)
        return table[["frames", "anomalies", "labelled", *LABELS]].astype("int64").reset_index()

    def labels_of(self, row: pd.Series) -> pd.DataFrame:
        """Every label given to the frame of one table row, oldest first."""
        labels = self.labels.all()
        return labels[(labels["path"] == row["path"]) & (labels["frame"] == row["frame"])]

    def with_human_labels(self, frames: pd.DataFrame) -> pd.DataFrame:
        """``frames`` plus a ``human_label`` column: the newest human label, or NaN."""
        latest = self.labels.latest()[["path", "frame", "label"]]
        merged = frames.merge(latest.rename(columns={"label": "human_label"}),
                              on=["path", "frame"], how="left")
        merged.index = frames.index
        return merged
