"""events: pixel-frames per second against the conventional trigger, on the same cubes,
and every pixel model's ROC AUC and speed on sessions it never saw.

    python benchmarks/bench_events.py [--frames 2048] [--seed 9000] [--repeat 3]
                                      [--train-seeds 300-311] [--out bench-output]

1. Simulates one session of each kind (ocean, cities, clouds, moonlit) with seeds the
   shipped model never saw.
2. On each cube, times the whole shipped pipeline (``run_cube``: background, windows,
   classification, events; no file I/O) and the conventional trigger (threshold over a
   moving background, 3-D clustering, track fit; :mod:`skytriage.events.detect`), best of
   ``--repeat`` interleaved runs, and judges both against the truth: meteor recall and
   false meteors per 1000 frames.
3. Trains every pixel model of the study on ``--train-seeds`` sessions and measures, on
   the benchmark sessions, its window ROC AUC and the pipeline's pixel-frames per second
   with it in place of the shipped pixel classifier.

Appends one JSON line to ``OUT/bench_events.jsonl`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from skytriage.events import EventsModel, conventional_trigger, run_cube
from skytriage.events.evaluate import meteor_events, window_auc
from skytriage.events.model import METHODS, PixelClassifier
from skytriage.events.simulate import SESSION_KINDS, Session, simulate_session
from skytriage.events.train import label_session, pooled, session_plan, simulate_labelled


def best_time(func, repeat: int) -> tuple[float, object]:
    """Shortest wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def trigger_quality(events: pd.DataFrame, session: Session) -> dict:
    """Meteor recall and false meteors of the trigger's events against the truth.

    A truth meteor is found when a trigger meteor overlaps it in time and lies within 4 px
    of its mean position; a trigger meteor near no truth meteor is false.
    """
    truth = session.events[session.events["kind"] == "meteor"]
    meteors = events[events["kind"] == "meteor"]
    found, false = set(), 0
    for _, event in meteors.iterrows():
        near = truth[(truth["t_start"] <= event["t_end"]) & (truth["t_end"] >= event["t_start"])
                     & (np.hypot(truth["x"] - event["x"], truth["y"] - event["y"]) < 4)]
        found |= set(near["id"])
        false += near.empty
    return {"meteors": len(truth), "found": len(found), "false_meteors": false}


def throughput_table(sessions: list[Session], model: EventsModel, repeat: int) -> pd.DataFrame:
    rows = []
    for session in sessions:
        cube = session.counts
        pixel_frames = cube.size
        run_cube(cube, model=model)  # warm up imports and caches
        t_ml, t_trigger = float("inf"), float("inf")
        for _ in range(repeat):  # interleaved, so that both see the same machine load
            t0 = time.perf_counter()
            result = run_cube(cube, model=model)
            t1 = time.perf_counter()
            trig = conventional_trigger(cube, session.frame_time)
            t2 = time.perf_counter()
            t_ml, t_trigger = min(t_ml, t1 - t0), min(t_trigger, t2 - t1)
        ours = meteor_events(result.events, result.candidates, session)
        theirs = trigger_quality(trig, session)
        rows.append({
            "session": session.name, "frames": len(cube),
            "pipeline_Mpix_frames_s": pixel_frames / t_ml / 1e6,
            "trigger_Mpix_frames_s": pixel_frames / t_trigger / 1e6,
            "speedup_vs_trigger": t_trigger / t_ml,
            "meteors": ours["meteors"],
            "pipeline_found": ours["found"], "pipeline_false": ours["false_meteors"],
            "trigger_found": theirs["found"], "trigger_false": theirs["false_meteors"],
        })
    return pd.DataFrame(rows)


def model_table(sessions: list[Session], train_seeds: list[int], frames: int,
                shipped: EventsModel, repeat: int) -> pd.DataFrame:
    training = simulate_labelled(session_plan(train_seeds, frames))
    cands, truth = pooled(training)
    labelled = [label_session(s) for s in sessions]
    rows = []
    for method in METHODS:
        t0 = time.perf_counter()
        pixels = PixelClassifier(method).fit(cands, truth)
        fit_s = time.perf_counter() - t0
        model = EventsModel(pixels=pixels, events=shipped.events,
                            event_features=shipped.event_features,
                            meteor_threshold=shipped.meteor_threshold)
        aucs = [window_auc(pixels.predict_proba(s.candidates), s.is_meteor) for s in labelled]
        seconds = 0.0
        for session in sessions:
            dt, _ = best_time(lambda s=session, m=model: run_cube(s.counts, model=m), repeat)
            seconds += dt
        rows.append({"model": method, "mean_window_auc": float(np.mean(aucs)),
                     "min_window_auc": float(np.min(aucs)), "fit_s": fit_s,
                     "pipeline_Mpix_frames_s": sum(s.counts.size for s in sessions)
                     / seconds / 1e6})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=9000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--train-seeds", default="300-311",
                        help="Sessions the per-model table trains on, FIRST-LAST.")
    parser.add_argument("--train-frames", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    args = parser.parse_args()
    first, last = (int(v) for v in args.train_seeds.split("-"))

    sessions = [simulate_session(kind, args.seed + i, args.frames)
                for i, kind in enumerate(SESSION_KINDS)]
    shipped = EventsModel.load()
    speed = throughput_table(sessions, shipped, args.repeat)
    models = model_table(sessions, list(range(first, last + 1)), args.train_frames, shipped,
                         args.repeat)
    total_ml = speed["frames"].sum() * 48 * 48 / (
        speed["frames"] * 48 * 48 / speed["pipeline_Mpix_frames_s"]).sum()
    total_trigger = speed["frames"].sum() * 48 * 48 / (
        speed["frames"] * 48 * 48 / speed["trigger_Mpix_frames_s"]).sum()
    record = {
        "bench": "events", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "args": {k: str(v) for k, v in vars(args).items()},
        "sessions": speed.to_dict(orient="records"), "models": models.to_dict(orient="records"),
        "pipeline_Mpix_frames_s": total_ml, "trigger_Mpix_frames_s": total_trigger,
        "speedup_vs_trigger": total_ml / total_trigger,
        "pipeline_recall": speed["pipeline_found"].sum() / speed["meteors"].sum(),
        "trigger_recall": speed["trigger_found"].sum() / speed["meteors"].sum(),
        "pipeline_false_per_1000_frames": 1000 * speed["pipeline_false"].sum()
        / speed["frames"].sum(),
        "trigger_false_per_1000_frames": 1000 * speed["trigger_false"].sum()
        / speed["frames"].sum(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "bench_events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    print(speed.to_markdown(index=False, floatfmt=".3g"))
    print()
    print(models.to_markdown(index=False, floatfmt=".4g"))
    print()
    print(json.dumps({k: v for k, v in record.items() if k not in ("sessions", "models")},
                     indent=2))


if __name__ == "__main__":
    main()
