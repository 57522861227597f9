"""Training the preview classifier: from simulated nights, from hand labels, or both.

``skytriage preview train`` simulates nights from many seeds (kept in a work folder, so a
rerun resumes), measures them exactly as ``skytriage preview`` does, fits
:class:`~skytriage.preview.model.FrameClassifier`, scores it on held-out seeds and writes
the model, its card and the training table. Hand labels (a CSV or the dashboard's
database) join the features of a preview result by ``(path, frame)``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from skytriage import __version__
from skytriage.errors import SkytriageInputError
from skytriage.io import write_parquet
from skytriage.preview.detect import ANOMALY_CLASSES, LABELS
from skytriage.preview.model import MODEL_NAME, FrameClassifier, shipped_model_path
from skytriage.preview.pipeline import DECISION_COLUMNS, measure, rescore

TRAINING_TABLE = "preview_training.parquet"
DEFAULT_SIZES = ((512, 512), (512, 768), (768, 768), (1024, 1024))


@dataclass
class SimulationPlan:
    """Which simulated nights to train or validate on.

    Attributes
    ----------
    seeds : list of int
        One night per seed.
    n_datasets, frames_per_dataset : int
        Datasets per night and frames per dataset.
    sizes : sequence of (ny, nx)
        Frame shapes, used in turn from seed to seed.
    psf : str
        Seeing profile (``moffat`` or ``gaussian``).
    fwhm_range : (float, float)
        Seeing FWHM range (px).
    """

    seeds: list[int]
    n_datasets: int = 3
    frames_per_dataset: int = 40
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES
    psf: str = "moffat"
    fwhm_range: tuple[float, float] = (1.8, 3.8)

    def describe(self) -> dict:
        """JSON-ready description for the model card."""
        return {"seeds": [min(self.seeds), max(self.seeds)] if self.seeds else [],
                "n_seeds": len(self.seeds), "datasets_per_seed": self.n_datasets,
                "frames_per_dataset": self.frames_per_dataset,
                "sizes_height_x_width": [f"{h}x{w}" for h, w in self.sizes], "psf": self.psf,
                "fwhm_range_px": list(self.fwhm_range)}


def simulated_table(plan: SimulationPlan, work_dir: str | os.PathLike, *,
                    workers: int | None = None,
                    progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Simulate (or reuse) every night of ``plan`` and return its labelled feature table.

    Returns
    -------
    DataFrame
        Features with their relative twins, ``labels`` from the truth, ``origin``
        (``sim:<seed>``).
    """
    from skytriage.preview.simulate import simulate_frames

    tables = []
    for i, seed in enumerate(plan.seeds):
        night = Path(work_dir) / f"{plan.psf}_seed_{seed}"
        if not (night / "truth.parquet").exists():
            ny, nx = plan.sizes[i % len(plan.sizes)]
            simulate_frames(night, n_datasets=plan.n_datasets,
                            frames_per_dataset=plan.frames_per_dataset, shape=(ny, nx),
                            seed=seed, psf=plan.psf, fwhm_range=plan.fwhm_range)
        truth = pd.read_parquet(night / "truth.parquet")
        measured = measure([night], workers=workers, cache_dir=night).table
        table = measured.merge(truth[["dataset", "frame", "labels"]], on=["dataset", "frame"],
                               how="inner", validate="one_to_one")
        table["origin"] = f"sim:{seed}"
        tables.append(table)
        if progress is not None:
            progress(f"seed {seed}: {len(table)} frames")
    return pd.concat(tables, ignore_index=True)


def load_labels(source: str) -> pd.DataFrame:
    """Hand labels from a CSV file or a database URL (the dashboard's label store).

    Returns
    -------
    DataFrame
        ``path``, ``frame`` (may be missing in a CSV: then the path alone identifies the
        frame), ``label`` — the newest label per frame.
    """
    if "://" in source:
        from skytriage.io import LabelStore

        labels = LabelStore(source).latest()
    else:
        try:
            labels = pd.read_csv(source)
        except (OSError, ValueError) as err:
            raise SkytriageInputError(source, f"cannot read labels: {err}") from err
    missing = {"path", "label"} - set(labels.columns)
    if missing:
        raise SkytriageInputError(source, "labels need the columns path and label; "
                                          f"missing {', '.join(sorted(missing))}")
    bad = sorted(set(labels["label"]) - set(LABELS))
    if bad:
        raise SkytriageInputError(source, f"unknown labels {bad}; expected "
                                          f"{', '.join(LABELS)}")
    return labels


def hand_labelled_table(result_dirs: Sequence[str | os.PathLike],
                        labels: pd.DataFrame) -> pd.DataFrame:
    """Features of the hand-labelled frames of preview results, with their labels."""
    tables = []
    for result in result_dirs:
        frames = pd.read_parquet(Path(result) / "frames.parquet")
        frames = frames[[c for c in frames.columns if c not in DECISION_COLUMNS]]
        frames = frames.assign(abspath=frames["path"].map(os.path.abspath))
        keys = ["abspath", "frame"] if "frame" in labels else ["abspath"]
        matched = frames.merge(labels.assign(abspath=labels["path"].map(os.path.abspath))
                               .drop(columns="path"), on=keys, how="inner")
        tables.append(matched.drop(columns="abspath"))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if table.empty:
        return table
    table["labels"] = table.pop("label")
    table["origin"] = "hand"
    return table


def fit_classifier(table: pd.DataFrame, seed: int = 0) -> FrameClassifier:
    """Fit a classifier on a labelled feature table (hand labels outweigh simulated ones)."""
    return FrameClassifier(seed=seed).fit(table, table["labels"])


def validation_metrics(model: FrameClassifier, table: pd.DataFrame) -> dict:
    """Any-anomaly precision/recall/F1 and per-class F1 of ``model`` on a labelled table."""
    from skytriage.preview.evaluate import multilabel_scores

    predicted = model.predict(table)
    scores = multilabel_scores(table["labels"], predicted["labels"])
    return {"frames": int(len(table)), **scores}


def model_card(model: FrameClassifier, table: pd.DataFrame, plan: SimulationPlan | None,
               command: str, validation: dict | None, hand_labels: int) -> dict:
    """The JSON card saved beside the model."""
    counts = {c: int(table["labels"].str.contains(c).sum()) for c in ANOMALY_CLASSES}
    counts["normal"] = int((table["labels"] == "normal").sum())
    return {
        "name": MODEL_NAME,
        "kind": "one HistGradientBoostingClassifier per class + one for any anomaly",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "skytriage": __version__,
        "python": platform.python_version(),
        "command": command,
        "seed": model.seed,
        "threshold": model.threshold,
        "training": {"simulated": plan.describe() if plan else None,
                     "hand_labelled_frames": hand_labels, "frames": int(len(table)),
                     "class_counts": counts},
        "features": model.features,
        "validation": validation,
        "intended_use": "naming the anomaly of sCMOS/CCD frames measured by skytriage "
                        "preview; trained on simulated nights: check it on your camera "
                        "with `skytriage preview evaluate` and hand labels.",
    }


def save_model(model: FrameClassifier, table: pd.DataFrame, card: dict,
               out_dir: str | os.PathLike) -> Path:
    """Write the model, its card and the training table into ``out_dir``."""
    out = Path(out_dir)
    path = model.save(out / f"{MODEL_NAME}.joblib", card)
    keep = [c for c in table.columns if c in set(model.features) | {"labels", "origin",
                                                                      "dataset", "frame"}]
    write_parquet(out / TRAINING_TABLE, table[keep])
    return path


def retrain_and_rescore(result_dir: str | os.PathLike, labels: pd.DataFrame) -> dict:
    """Retrain on the shipped training table plus hand labels of one result; re-score it.

    The new model is saved in ``result_dir/.model/`` (the shipped one is not touched) and
    the result's ``frames.parquet``, ``frames.csv`` and ``report.html`` are rewritten.

    Returns
    -------
    dict
        ``hand_labelled`` (frames matched), ``training_frames``, ``model`` (path),
        ``anomalies`` after re-scoring.
    """
    hand = hand_labelled_table([result_dir], labels)
    base = pd.read_parquet(shipped_model_path().with_name(TRAINING_TABLE))
    table = pd.concat([base, hand], ignore_index=True)
    model = fit_classifier(table)
    card = model_card(model, table, None, "dashboard: retrain_and_rescore", None, len(hand))
    path = save_model(model, table, card, Path(result_dir) / ".model")
    result = rescore(result_dir, model)
    return {"hand_labelled": int(len(hand)), "training_frames": int(len(table)),
            "model": str(path), "anomalies": int(np.sum(result.frames["is_anomaly"]))}
