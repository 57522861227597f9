"""Training data from simulated sessions, and the model that ``skytriage events train`` ships.

Candidates are labelled from the truth: a window is a meteor when the meteor mask is set
at its pixel within a frame of its peak; an event takes the kind of the truth event that
most of its candidates' peaks fall in (``background`` when none). The event classifier
must see pixel scores like those of unseen data, so it is trained on out-of-fold scores
(each session scored by a pixel classifier that never saw it); the pixel classifier that
ships is then refitted on every session.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

import skytriage
from skytriage.events.features import Candidates, concat
from skytriage.events.model import EventsModel, PixelClassifier
from skytriage.events.pipeline import Analysis, analyse, score_events
from skytriage.events.simulate import SESSION_KINDS, Session, simulate_session

#: Sessions are cross-fitted in this many folds to train the event classifier.
EVENT_FOLDS = 4


@dataclass
class LabelledSession:
    """One simulated session, analysed, with the truth of every candidate.

    Attributes
    ----------
    session : Session
    analysis : Analysis
    is_meteor : ndarray of bool, shape (n,)
        Truth of each candidate window.
    truth_id : ndarray of int64, shape (n,)
        The truth event at each candidate's peak (0: none).
    """

    session: Session
    analysis: Analysis
    is_meteor: np.ndarray
    truth_id: np.ndarray

    @property
    def candidates(self) -> Candidates:
        return self.analysis.candidates


def session_plan(seeds: list[int], n_frames: int) -> list[tuple[str, int, int]]:
    """(kind, seed, frames) for every seed, the kinds taken in turn."""
    return [(SESSION_KINDS[i % len(SESSION_KINDS)], seed, n_frames)
            for i, seed in enumerate(seeds)]


def truth_at(ids: np.ndarray, t: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The truth event id at each (t±1, y, x): the one found most, 0 when none."""
    found = np.stack([ids[np.clip(t + dt, 0, len(ids) - 1), y, x] for dt in (0, -1, 1)])
    first = np.where(found[0] > 0, found[0], np.where(found[1] > 0, found[1], found[2]))
    return first.astype(np.int64)


def label_session(session: Session) -> LabelledSession:
    """Analyse a session and label its candidates."""
    analysis = analyse(session.counts)
    c = analysis.candidates
    truth_id = truth_at(session.event_ids, c.t, c.y, c.x)
    kinds = np.concatenate([["none"], session.events["kind"].to_numpy()])
    return LabelledSession(session, analysis, kinds[truth_id] == "meteor", truth_id)


def simulate_labelled(plan: list[tuple[str, int, int]], progress=None) -> list[LabelledSession]:
    """Simulate, analyse and label every session of a plan."""
    out = []
    for i, (kind, seed, n_frames) in enumerate(plan):
        out.append(label_session(simulate_session(kind, seed, n_frames)))
        if progress:
            progress(i + 1, len(plan))
    return out


def pooled(sessions: list[LabelledSession]) -> tuple[Candidates, np.ndarray]:
    """All candidates of several sessions and their truth."""
    return (concat([s.candidates for s in sessions]),
            np.concatenate([s.is_meteor for s in sessions]))


def event_truth(events: pd.DataFrame, cands: Candidates, truth_id: np.ndarray,
                session: Session) -> pd.Series:
    """Truth kind of each event: the truth event most of its candidates peak in."""
    kinds = np.concatenate([["background"], session.events["kind"].to_numpy()])
    labels = cands.features["event"].to_numpy()
    table = pd.DataFrame({"event": labels, "truth": truth_id})
    hit = table[table["truth"] > 0]
    majority = hit.groupby("event")["truth"].agg(lambda s: s.value_counts().index[0])
    truth = events["event"].map(majority).fillna(0).astype(int).to_numpy()
    return pd.Series(kinds[truth], index=events.index, name="truth_kind")


def events_with_truth(labelled: LabelledSession, model: EventsModel) -> pd.DataFrame:
    """The session's events (with features and kinds) under ``model``, plus ``truth_kind``
    and ``truth_id``."""
    _, events = score_events(labelled.analysis, model, labelled.session.frame_time)
    events["truth_kind"] = event_truth(events, labelled.candidates, labelled.truth_id,
                                       labelled.session)
    return events


def fit_model(sessions: list[LabelledSession], method: str = "gradient_boosting",
              seed: int = 0, folds: int = EVENT_FOLDS) -> EventsModel:
    """Train the pixel classifier and, on out-of-fold scores, the event classifier."""
    tables = []
    folds = max(2, min(folds, len(sessions)))
    for k in range(folds):
        held = [s for i, s in enumerate(sessions) if i % folds == k]
        rest = [s for i, s in enumerate(sessions) if i % folds != k]
        fold_model = EventsModel(pixels=PixelClassifier(method, seed).fit(*pooled(rest)))
        tables += [events_with_truth(s, fold_model) for s in held]
    table = pd.concat(tables, ignore_index=True)
    model = EventsModel(pixels=PixelClassifier(method, seed).fit(*pooled(sessions)))
    return model.fit_events(table, table["truth_kind"], seed=seed)


def model_card(model: EventsModel, plan: list[tuple[str, int, int]], command: str,
               validation: dict | None) -> dict:
    """The JSON card stored beside the model."""
    from skytriage.events.features import CANDIDATE_Z, FEATURE_NAMES, WINDOW
    from skytriage.events.tracks import EVENT_FEATURES

    return {
        "name": "events_model",
        "kind": f"pixel windows: {model.pixels.method}; events: HistGradientBoosting "
                "(meteor, lightning, elve, cosmic_ray, flasher, background)",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "skytriage": skytriage.__version__,
        "python": platform.python_version(),
        "command": command,
        "seed": model.pixels.seed,
        "training": {"simulator": "skytriage simulate events (skytriage.events.simulate)",
                     "sessions": [{"kind": k, "seed": s, "frames": n} for k, s, n in plan]},
        "window_frames": WINDOW,
        "candidate_z": CANDIDATE_Z,
        "pixel_features": list(FEATURE_NAMES),
        "event_features": list(EVENT_FEATURES),
        "meteor_threshold": model.meteor_threshold,
        "validation": validation,
    }
