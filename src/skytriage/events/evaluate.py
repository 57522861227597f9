"""Judge events against truth, in the study's form: leave-one-session-out ROC AUC per model,
and meteor event recall and false meteors per 1000 frames.

- **Window AUC** (the study's measure): ROC AUC of the meteor probability over the
  candidate pixel windows of a session the model never saw, trained on all the others.
- **Pixel coverage**: the fraction of the meteor pixels of the truth mask that gave a
  meteor window at all (the rest were too faint for any per-pixel method to see).
- **Event map AUC**: ROC AUC of the 2-D event map against "the pixel saw a meteor",
  the pixels without a window scoring 0: the strictest pixel measure.
- **Events**: a truth meteor is found when a detected meteor event has a candidate in
  it; a detected meteor with none is a false meteor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from skytriage.events.features import Candidates
from skytriage.events.model import METHODS, EventsModel, PixelClassifier
from skytriage.events.pipeline import score_events
from skytriage.events.simulate import Session
from skytriage.events.train import LabelledSession, fit_model, pooled, truth_at
from skytriage.io import write_csv, write_json

Progress = Callable[[str], None] | None


def window_auc(scores: np.ndarray, is_meteor: np.ndarray) -> float:
    """ROC AUC over windows; NaN when one class is missing."""
    if is_meteor.all() or not is_meteor.any():
        return float("nan")
    return float(roc_auc_score(is_meteor, scores))


def event_map_auc(event_map: np.ndarray, session: Session) -> float:
    """ROC AUC of a 2-D score map against the pixels that saw a meteor."""
    truth = session.meteor_mask.any(axis=0).ravel()
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, event_map.ravel()))


def pixel_coverage(cands: Candidates, is_meteor: np.ndarray, session: Session) -> float:
    """Fraction of the truth's meteor pixels with at least one meteor window."""
    truth = session.meteor_mask.any(axis=0)
    seen = np.zeros_like(truth)
    seen[cands.y[is_meteor], cands.x[is_meteor]] = True
    return float((seen & truth).sum() / max(truth.sum(), 1))


def meteor_events(events: pd.DataFrame, cands: Candidates, session: Session
                  ) -> dict[str, float]:
    """Meteor recall and false meteors of detected events against a session's truth.

    Parameters
    ----------
    events : pandas.DataFrame
        Detected events with ``event`` and ``kind``.
    cands : Candidates
        The candidates, with the ``event`` column in their features.
    session : Session
        The truth.
    """
    truth = session.events
    meteor_ids = set(truth.loc[truth["kind"] == "meteor", "id"])
    ids = truth_at(session.event_ids, cands.t, cands.y, cands.x)
    labels = cands.features["event"].to_numpy()
    detected = events.loc[events["kind"] == "meteor", "event"].to_numpy()
    found, false = set(), 0
    for event in detected:
        hits = set(ids[labels == event]) & meteor_ids
        found |= hits
        false += not hits
    n_frames = len(session.counts)
    return {"meteors": len(meteor_ids), "found": len(found),
            "recall": len(found) / len(meteor_ids) if meteor_ids else float("nan"),
            "false_meteors": false, "frames": n_frames,
            "false_per_1000_frames": 1000 * false / n_frames}


def detect(labelled: LabelledSession, model: EventsModel) -> tuple[np.ndarray, pd.DataFrame]:
    """Scores of a session's candidates and its events (background left out) under ``model``."""
    scores, events = score_events(labelled.analysis, model, labelled.session.frame_time)
    return scores, events[events["kind"] != "background"].reset_index(drop=True)


@dataclass
class Evaluation:
    """Leave-one-session-out results.

    Attributes
    ----------
    windows : pandas.DataFrame
        One row per (method, held-out session): ``method, session, kind, auc, windows,
        meteor_windows``.
    events : pandas.DataFrame
        One row per held-out session under the full pipeline (``method``): recall, false
        meteors, coverage and event-map AUC.
    method : str
        The pixel method of the full pipeline.
    """

    windows: pd.DataFrame
    events: pd.DataFrame
    method: str

    def auc_table(self) -> pd.DataFrame:
        """The study's table: mean, std and min of the held-out AUC per model."""
        grouped = self.windows.groupby("method", sort=False)["auc"]
        table = pd.DataFrame({"mean_auc": grouped.mean(), "std": grouped.std(ddof=0),
                              "min": grouped.min(), "sessions": grouped.count()})
        by_kind = self.windows.pivot_table(index="method", columns="kind", values="auc",
                                           aggfunc="mean", sort=False)
        return table.join(by_kind).reset_index()

    @property
    def summary(self) -> dict:
        """Headline numbers (JSON-ready)."""
        ev = self.events
        total_false = int(ev["false_meteors"].sum()) if len(ev) else 0
        frames = int(ev["frames"].sum()) if len(ev) else 0
        return {
            "mean_window_auc": {m: float(a) for m, a in
                                self.windows.groupby("method", sort=False)["auc"].mean().items()},
            "pipeline_method": self.method,
            "meteor_recall": float(ev["found"].sum() / max(ev["meteors"].sum(), 1)),
            "meteors": int(ev["meteors"].sum()) if len(ev) else 0,
            "false_meteors": total_false,
            "frames": frames,
            "false_per_1000_frames": 1000 * total_false / max(frames, 1),
            "mean_pixel_coverage": float(ev["coverage"].mean()) if len(ev) else float("nan"),
            "mean_event_map_auc": float(ev["event_map_auc"].mean()) if len(ev) else float("nan"),
        }

    def markdown(self) -> str:
        """The tables as Markdown, ready for the terminal and docs/results.md."""
        s = self.summary
        lines = ["Leave-one-session-out ROC AUC of the candidate pixel windows "
                 f"({self.windows['session'].nunique()} sessions):", "",
                 self.auc_table().to_markdown(index=False, floatfmt=".4f"), "",
                 f"Events ({self.method}, each session held out): meteor recall "
                 f"{s['meteor_recall']:.3f} ({sum(self.events['found'])}/{s['meteors']}), "
                 f"{s['false_meteors']} false meteors in {s['frames']} frames "
                 f"({s['false_per_1000_frames']:.2f} per 1000 frames); meteor pixels with a "
                 f"window {s['mean_pixel_coverage']:.3f}; event-map AUC "
                 f"{s['mean_event_map_auc']:.4f}", "",
                 self.events.to_markdown(index=False, floatfmt=".3f")]
        return "\n".join(lines)

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write loso_windows.csv, loso_events.csv, auc_table.csv and evaluation.json."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return [write_csv(out / "loso_windows.csv", self.windows),
                write_csv(out / "loso_events.csv", self.events),
                write_csv(out / "auc_table.csv", self.auc_table()),
                write_json(out / "evaluation.json", self.summary)]


def leave_one_session_out(sessions: Sequence[LabelledSession],
                          methods: Sequence[str] = METHODS,
                          pipeline_method: str = "gradient_boosting", seed: int = 0,
                          progress: Progress = None) -> Evaluation:
    """Hold out each session in turn, train on the others, and judge on it.

    Parameters
    ----------
    sessions : sequence of LabelledSession
        At least two.
    methods : sequence of str
        Pixel classifiers of the AUC table (:data:`~skytriage.events.model.METHODS`).
    pipeline_method : str
        Pixel classifier of the full pipeline whose events are judged (``""``: none).
    seed : int
        Random state of the models.
    progress : callable, optional
        Called with a line of text after each held-out session.

    Returns
    -------
    Evaluation
    """
    if len(sessions) < 2:
        raise ValueError("leave-one-session-out needs at least two sessions")
    window_rows, event_rows = [], []
    for i, held in enumerate(sessions):
        rest = [s for j, s in enumerate(sessions) if j != i]
        cands, truth = pooled(rest)
        for method in methods:
            scores = PixelClassifier(method, seed).fit(cands, truth).predict_proba(
                held.candidates)
            window_rows.append({"method": method, "session": held.session.name,
                                "kind": held.session.kind,
                                "auc": window_auc(scores, held.is_meteor),
                                "windows": len(held.candidates),
                                "meteor_windows": int(held.is_meteor.sum())})
        if pipeline_method:
            model = fit_model(rest, pipeline_method, seed)
            scores, events = detect(held, model)
            event_map = np.zeros(held.session.counts.shape[1:], np.float32)
            np.maximum.at(event_map, (held.candidates.y, held.candidates.x), scores)
            row = {"session": held.session.name, "kind": held.session.kind,
                   **meteor_events(events, held.candidates, held.session),
                   "coverage": pixel_coverage(held.candidates, held.is_meteor, held.session),
                   "event_map_auc": event_map_auc(event_map, held.session)}
            event_rows.append(row)
        if progress:
            progress(f"held out {held.session.name} ({i + 1}/{len(sessions)})")
    return Evaluation(pd.DataFrame(window_rows), pd.DataFrame(event_rows), pipeline_method)
