"""The learned parts of events: which pixel windows are meteors, and what each event is.

:class:`PixelClassifier` puts the study's models behind one interface (scikit-learn
shape: ``fit``, ``predict_proba``, ``predict``): KNN on the raw windows, KNN on windows
plus features, random forest, gradient boosting, logistic regression and a small MLP
on the features. :class:`EventsModel` bundles the pixel classifier that the pipeline
uses with the event classifier (meteor, lightning, elve, cosmic_ray, flasher or
background) and the thresholds, and is what ships in ``skytriage/weights/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from skytriage.events.features import FEATURE_NAMES, Candidates

MODEL_NAME = "events_model"
#: The study's models, by the name the CLI and the tables use.
METHODS = ("knn_raw", "knn_features", "random_forest", "gradient_boosting", "logistic", "mlp")
EVENT_KINDS = ("meteor", "lightning", "elve", "cosmic_ray", "flasher", "background")
#: OpenMP/BLAS threads of fits and predictions: the models are small, and on a busy
#: machine more threads spin against each other (a fit took 10x longer with 8 threads).
THREADS = 1
#: Event classifier's meteor probability from which an event (with a meteor-like pixel
#: window) is called a meteor: chosen on validation sessions (seeds 800-823, neither trained
#: nor tested on) for <= 1 false meteor per 1000 frames with room to spare: 0.24 there,
#: recall 0.971 (0.5: 0.57 per 1000, recall 0.976).
METEOR_THRESHOLD = 0.8


_CONTROLLER: list[ThreadpoolController] = []


def few_threads():
    """Context that limits OpenMP/BLAS to :data:`THREADS` (the controller, which finds the
    loaded libraries, is made once: making one takes milliseconds, using it microseconds)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=THREADS)


def shipped_model_path() -> Path:
    """Path of the model that ships with the package."""
    return Path(str(files("skytriage") / "weights" / f"{MODEL_NAME}.joblib"))


def shape_of(windows: np.ndarray) -> np.ndarray:
    """Windows smoothed over 3 frames and divided by their peak: the light curve's shape."""
    ws = windows.copy()
    ws[:, 1:] += windows[:, :-1]
    ws[:, :-1] += windows[:, 1:]
    centre = ws.shape[1] // 2
    return (ws / np.maximum(ws[:, centre:centre + 1], 1e-3)).astype(np.float32)


def _estimator(method: str, seed: int):
    if method in ("knn_raw", "knn_features"):
        return make_pipeline(StandardScaler(), KNeighborsClassifier(15, weights="distance"))
    if method == "random_forest":
        return RandomForestClassifier(300, min_samples_leaf=2, class_weight="balanced",
                                      n_jobs=-1, random_state=seed)
    if method == "gradient_boosting":
        # small trees and a fast rate: as accurate on held-out sessions as 31 leaves at 0.08
        # (window AUC 0.9987 against 0.9989) with half the trees to walk per candidate
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.2,
                                              max_leaf_nodes=15, l2_regularization=1.0,
                                              early_stopping=True, n_iter_no_change=20,
                                              class_weight="balanced", random_state=seed)
    if method == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000,
                                                                  class_weight="balanced"))
    if method == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier((32, 16), alpha=1e-3,
                                                             max_iter=400, early_stopping=True,
                                                             random_state=seed))
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


@dataclass
class PixelClassifier:
    """Meteor or not, for each candidate pixel window.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`. ``knn_raw`` sees the window's shape (smoothed, divided by
        the peak) and its peak significance; ``knn_features`` that plus the features; the
        others the features (:data:`~skytriage.events.features.FEATURE_NAMES`).
    seed : int
        Random state of the models that have one.
    """

    method: str = "gradient_boosting"
    seed: int = 0
    estimator: object = None

    def inputs(self, cands: Candidates) -> np.ndarray:
        """The matrix this method sees, float32 (n, d)."""
        features = cands.features[list(FEATURE_NAMES)].to_numpy(np.float32)
        if self.method == "knn_raw":
            return np.hstack([shape_of(cands.windows), np.log1p(features[:, :1])])
        if self.method == "knn_features":
            return np.hstack([shape_of(cands.windows), features])
        return features

    def fit(self, cands: Candidates, is_meteor: np.ndarray) -> PixelClassifier:
        """Train on candidates and their truth (bool, shape (n,))."""
        self.estimator = _estimator(self.method, self.seed)
        with few_threads():
            self.estimator.fit(self.inputs(cands), np.asarray(is_meteor, bool))
        return self

    def predict_proba(self, cands: Candidates) -> np.ndarray:
        """Meteor probability of every candidate, float32 (n,)."""
        if len(cands) == 0:
            return np.zeros(0, np.float32)
        with few_threads():
            proba = self.estimator.predict_proba(self.inputs(cands))
        classes = list(self.estimator.classes_)
        return (proba[:, classes.index(True)] if True in classes
                else np.zeros(len(cands))).astype(np.float32)

    def predict(self, cands: Candidates, threshold: float = 0.5) -> np.ndarray:
        """True where the meteor probability reaches ``threshold``."""
        return self.predict_proba(cands) >= threshold


@dataclass
class EventsModel:
    """The shipped model: pixel classifier, event classifier and thresholds.

    Attributes
    ----------
    pixels : PixelClassifier
        Scores each candidate window.
    events : HistGradientBoostingClassifier or None
        Names each grouped event (:data:`EVENT_KINDS`) from
        :data:`~skytriage.events.tracks.EVENT_FEATURES`; None: the score decides alone.
    meteor_threshold : float
        Probability of ``meteor`` (event classifier) from which an event with a meteor-like
        pixel window is a meteor.
    card : dict
        The model card.
    """

    pixels: PixelClassifier = field(default_factory=PixelClassifier)
    events: object = None
    event_features: list[str] = field(default_factory=list)
    meteor_threshold: float = METEOR_THRESHOLD
    card: dict = field(default_factory=dict)

    def fit_events(self, table: pd.DataFrame, kinds: pd.Series, seed: int = 0) -> EventsModel:
        """Train the event classifier on event features and their truth kinds."""
        from skytriage.events.tracks import EVENT_FEATURES

        self.event_features = list(EVENT_FEATURES)
        self.events = HistGradientBoostingClassifier(
            max_iter=120, learning_rate=0.1, max_leaf_nodes=15, l2_regularization=1.0,
            class_weight="balanced", random_state=seed)
        with few_threads():
            self.events.fit(table[self.event_features].to_numpy(np.float32), kinds.to_numpy())
        return self

    def event_proba(self, table: pd.DataFrame) -> pd.DataFrame:
        """Probability of each kind for each event, columns ``p_<kind>``."""
        out = np.zeros((len(table), len(EVENT_KINDS)), np.float32)
        if len(table) and self.events is not None:
            with few_threads():
                proba = self.events.predict_proba(
                    table[self.event_features].to_numpy(np.float32))
            columns = [EVENT_KINDS.index(kind) for kind in self.events.classes_]
            out[:, columns] = proba
        return pd.DataFrame(out, index=table.index, columns=[f"p_{k}" for k in EVENT_KINDS])

    def save(self, path: str | os.PathLike, card: dict | None = None) -> Path:
        """Write the model (joblib) and its card (JSON beside it, same stem)."""
        from skytriage.io.models import save_joblib_model

        self.card = dict(card or self.card)
        return save_joblib_model(path, self, self.card)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> EventsModel:
        """Load a saved model; ``None`` loads the shipped one."""
        from skytriage.io.models import load_joblib_model

        model, card = load_joblib_model(path if path is not None else shipped_model_path(), cls)
        if card is not None:
            model.card = card
        return model

