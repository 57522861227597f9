"""The learned part of preview: which anomalies a frame has (multi-label).

One gradient-boosting classifier (scikit-learn's ``HistGradientBoostingClassifier``) per
anomaly class plus one for "any anomaly", on the frame's scale-free features and their
dataset-relative twins. Trained on ``skytriage simulate frames`` from many seeds and,
optionally, on hand labels. The shipped model lives in ``skytriage/weights/`` with a
model card; ``skytriage preview train`` rebuilds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from skytriage.preview.detect import ANOMALY_CLASSES

MODEL_NAME = "preview_classifier"
# Absolute features that depend on the camera, the exposure or the frame size rather
# than on what happened: the classifier sees them only through their relative twins.
CAMERA_DEPENDENT = {"mean", "median", "std", "sigma", "p01", "p99", "max", "noise",
                    "bin_factor", "n_blobs", "line_angle", "line_snr_angle", "n_psf_stars",
                    "lap_max", "sobel_max"}
ANY = "any"
# Early stopping holds out 15 % of the frames, stratified: only worth it (and only
# possible) when both sides of a class have enough frames.
_MIN_FOR_EARLY_STOP = 20


def shipped_model_path() -> Path:
    """Path of the classifier that ships with the package."""
    return Path(str(files("skytriage") / "weights" / f"{MODEL_NAME}.joblib"))


def classifier_features(columns) -> list[str]:
    """Feature columns the classifier uses, in a fixed order."""
    from skytriage.preview.features import FEATURE_NAMES

    absolute = [c for c in FEATURE_NAMES if c not in CAMERA_DEPENDENT]
    relative = [f"rel_{c}" for c in FEATURE_NAMES if f"rel_{c}" in set(columns)]
    return [c for c in absolute if c in set(columns)] + relative


def label_matrix(labels: pd.Series) -> pd.DataFrame:
    """``"cloud;satellite"`` strings -> one boolean column per anomaly class plus ``any``."""
    sets = labels.fillna("normal").astype(str).str.split(";")
    matrix = pd.DataFrame({cls: sets.map(lambda s, c=cls: c in s) for cls in ANOMALY_CLASSES},
                          index=labels.index)
    matrix[ANY] = matrix.any(axis=1)
    return matrix


@dataclass
class FrameClassifier:
    """Multi-label frame classifier (scikit-learn style: fit, predict, save, load).

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, l2_regularization :
        Passed to every ``HistGradientBoostingClassifier``, which stops early when 20
        rounds bring nothing on a 15 % validation split (classes with at least 20
        frames on each side).
    threshold : float
        Probability above which a class (or "any anomaly") is predicted.
    seed : int
        Random state of the boosters.
    """

    max_iter: int = 300
    learning_rate: float = 0.08
    max_leaf_nodes: int = 31
    l2_regularization: float = 1.0
    threshold: float = 0.5
    seed: int = 0
    features: list[str] = field(default_factory=list)
    models: dict[str, HistGradientBoostingClassifier] = field(default_factory=dict)
    card: dict = field(default_factory=dict)

    def fit(self, table: pd.DataFrame, labels: pd.Series) -> FrameClassifier:
        """Train on a feature table (with relative features) and ``;``-separated labels."""
        self.features = classifier_features(table.columns)
        x = table[self.features].to_numpy(np.float32)
        targets = label_matrix(labels)
        self.models = {}
        for name in [ANY, *ANOMALY_CLASSES]:
            y = targets[name].to_numpy()
            if y.all() or not y.any():
                continue  # a class absent from the training labels is never predicted
            booster = HistGradientBoostingClassifier(
                max_iter=self.max_iter, learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes, l2_regularization=self.l2_regularization,
                early_stopping=bool(min(y.sum(), (~y).sum()) >= _MIN_FOR_EARLY_STOP),
                validation_fraction=0.15, n_iter_no_change=20,
                class_weight="balanced", random_state=self.seed)
            self.models[name] = booster.fit(x, y)
        return self

    def predict_proba(self, table: pd.DataFrame) -> pd.DataFrame:
        """Probability of ``any`` anomaly and of each class, columns ``p_<name>``."""
        x = table.reindex(columns=self.features).to_numpy(np.float32)
        out = {}
        for name in [ANY, *ANOMALY_CLASSES]:
            model = self.models.get(name)
            out[f"p_{name}"] = (model.predict_proba(x)[:, 1] if model is not None
                                else np.zeros(len(table)))
        return pd.DataFrame(out, index=table.index).astype(np.float32)

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """``is_anomaly``, ``label`` and ``labels`` from :meth:`predict_proba`."""
        return decide(self.predict_proba(table), self.threshold)

    def save(self, path: str | os.PathLike, card: dict | None = None) -> Path:
        """Write the model (joblib) and its card (JSON beside it, same stem)."""
        from skytriage.io.models import save_joblib_model

        self.card = dict(card or self.card)
        return save_joblib_model(path, self, self.card)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> FrameClassifier:
        """Load a saved model; ``None`` loads the shipped one."""
        from skytriage.io.models import load_joblib_model

        model, card = load_joblib_model(path if path is not None else shipped_model_path(), cls)
        if card is not None:
            model.card = card
        return model


def decide(proba: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Turn probabilities into ``is_anomaly``, ``label``, ``labels``.

    A frame is anomalous when ``p_any`` or any class probability passes ``threshold``;
    its label is the most probable class, its labels every class that passes (at least
    the label).
    """
    classes = proba[[f"p_{c}" for c in ANOMALY_CLASSES]].to_numpy()
    best = np.asarray(ANOMALY_CLASSES)[classes.argmax(axis=1)]
    is_anomaly = (proba[f"p_{ANY}"].to_numpy() > threshold) | (classes > threshold).any(axis=1)
    labels = []
    for row, flag, top in zip(classes, is_anomaly, best, strict=True):
        if not flag:
            labels.append("normal")
            continue
        passing = [c for c, p in zip(ANOMALY_CLASSES, row, strict=True) if p > threshold]
        labels.append(";".join(sorted(set(passing) | {top})))
    return pd.DataFrame({"is_anomaly": is_anomaly,
                         "label": np.where(is_anomaly, best, "normal"),
                         "labels": labels}, index=proba.index)
