"""``skytriage.preview.run``: features of every frame, scored within its dataset.

Frames are read and measured in parallel (one task per file); each finished frame is
appended to a cache in the output folder, so an interrupted run resumes where it stopped
and a rerun only measures new or changed files.
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
from skytriage.preview.detect import DEFAULT_THRESHOLD, score_dataset
from skytriage.preview.features import FEATURE_VERSION, frame_features

CONTRACT_COLUMNS = ["path", "dataset", "frame", "anomaly_score", "is_anomaly", "label", "labels"]
CACHE_NAME = ".cache/features.jsonl"


def measure_frame(path: str) -> dict[str, float | str | None]:
    """Read one frame and return its features plus ``exptime`` (s) and ``date_obs`` (ISO)."""
    frame = read_frame(path, dtype=None)
    features: dict[str, float | str | None] = frame_features(frame.data)
    features["exptime"] = frame.meta.exptime
    features["date_obs"] = frame.meta.date_obs
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
class PreviewResult:
    """What preview found.

    Attributes
    ----------
    frames : DataFrame
        One row per measured frame: the contract columns of DESIGN.md, then features.
    failed : list of dict
        ``{path, error}`` for every input that could not be used.
    threshold : float
        Robust-z threshold that made ``is_anomaly``.
    """

    frames: pd.DataFrame
    failed: list[dict[str, str]] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``frames.parquet``, ``frames.csv`` and ``report.html`` into ``out_dir``."""
        from skytriage.preview.report import write_report

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"frames.parquet": out / "frames.parquet", "frames.csv": out / "frames.csv"}
        write_parquet(paths["frames.parquet"], self.frames)
        write_csv(paths["frames.csv"], self.frames)
        paths["report.html"] = write_report(self, out / "report.html")
        return paths


def run(
    inputs: Sequence[str | os.PathLike],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int | None = None,
    scheduler: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> PreviewResult:
    """Measure and score every frame of the given files and folders.

    Parameters
    ----------
    inputs : sequence of path
        FITS files and folders; a folder is a dataset, a folder of folders a night.
    threshold : float
        Robust-z score above which a frame is anomalous.
    workers, scheduler :
        Passed to :func:`skytriage.parallel.map_inputs`.
    cache_dir : path, optional
        Folder that keeps the feature cache (``.cache/features.jsonl``); reruns resume.
    progress : bool
        Draw a progress bar.
    """
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
    return PreviewResult(_score(pd.DataFrame(rows), threshold), failed, threshold)


def _score(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Add the contract columns, dataset by dataset, and order the columns."""
    if table.empty:
        return pd.DataFrame(columns=CONTRACT_COLUMNS)
    scored = pd.concat([score_dataset(group, threshold) for _, group in
                        table.groupby("dataset", sort=False)])
    table = table.join(scored)
    features = [c for c in table.columns if c not in CONTRACT_COLUMNS]
    table = table[CONTRACT_COLUMNS + features].reset_index(drop=True)
    table["frame"] = table["frame"].astype(np.int64)
    return table
