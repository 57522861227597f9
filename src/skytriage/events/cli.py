"""``skytriage events ...`` and ``skytriage simulate events``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skytriage.clikit import (
    DefaultCommandGroup,
    JsonOption,
    OutOption,
    fail_usage,
    finish,
    parse_seeds,
)
from skytriage.io import RunSummary

app = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=True,
                  help="Meteors and other fast transients in per-pixel time series.")

ModelOption = Annotated[Path | None, typer.Option(
    "--model", help="Model (.joblib) to use instead of the shipped one.")]
SeedsOption = Annotated[str, typer.Option(
    help="Simulated sessions FIRST-LAST (or a,b,c); the kinds ocean, cities, clouds, "
         "moonlit are taken in turn.")]
FramesOption = Annotated[int, typer.Option(min=64, help="Frames per simulated session.")]


def _out_dir(out: Path, cube: Path, many: bool) -> Path:
    """One sub-folder per input stem when there are several inputs."""
    if not many:
        return out
    name = cube.name
    for suffix in (".gz", ".fz", ".fits", ".fit", ".fts"):
        name = name.removesuffix(suffix)
    return out / name


@app.command("run")
def run_command(
    ctx: typer.Context,
    cubes: Annotated[list[Path], typer.Argument(help="FITS cubes (t, y, x) of counts per "
                                                     "frame, with TIMEDEL in seconds.")],
    out: OutOption,
    model: ModelOption = None,
    frame_time: Annotated[float | None, typer.Option(
        min=1e-6, help="Seconds per frame when the file has no TIMEDEL (default 0.04096).")
    ] = None,
    report: Annotated[bool, typer.Option(help="Write report.html.")] = True,
    json_out: JsonOption = False,
) -> None:
    """Score every pixel's time series, group the meteor-like pixels into events; write
    event_map.fits, events.ecsv and report.html."""
    from skytriage.errors import SkytriageInputError
    from skytriage.events import EventsModel, run

    summary = RunSummary("events", cubes, {"model": str(model) if model else "shipped",
                                           "frame_time": frame_time, "report": report})
    loaded = EventsModel.load(model)
    results = {}
    for cube in cubes:
        try:
            with summary.timed("detect_s"):
                result = run(cube, model=loaded, frame_time=frame_time)
        except SkytriageInputError as err:
            summary.fail(cube, err)
            continue
        target = _out_dir(out, cube, len(cubes) > 1)
        with summary.timed("write_s"):
            for path in result.write(target, report=report).values():
                summary.output(path)
        summary.count("done")
        summary.count("frames", len(result.cube))
        summary.count("events", len(result.events))
        summary.count("meteors", len(result.meteors))
        results[str(cube)] = {"ground_velocity_px_s": result.velocity, "notes": result.notes}
        for note in result.notes:
            typer.echo(f"{cube}: {note}", err=True)
    summary.extra["cubes"] = results
    finish(ctx, summary, out, json_out)


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    out: OutOption,
    seeds: SeedsOption = "1-8",
    frames: FramesOption = 2048,
    methods: Annotated[str, typer.Option(help="Pixel models of the table, comma-separated, "
                                              "or 'all'.")] = "all",
    pipeline: Annotated[str, typer.Option(help="Pixel model of the full pipeline whose "
                                               "events are judged.")] = "gradient_boosting",
    json_out: JsonOption = False,
) -> None:
    """Leave-one-session-out ROC AUC of every pixel model (the study's table), and meteor
    event recall and false meteors per 1000 frames, on simulated sessions."""
    from skytriage.events.evaluate import leave_one_session_out
    from skytriage.events.model import METHODS
    from skytriage.events.train import session_plan, simulate_labelled

    chosen = list(METHODS) if methods == "all" else [m.strip() for m in methods.split(",")]
    unknown = [m for m in [*chosen, pipeline] if m not in METHODS]
    if unknown:
        fail_usage(f"unknown model(s) {', '.join(unknown)}; expected {', '.join(METHODS)}")
    plan = session_plan(parse_seeds(seeds), frames)
    if len(plan) < 2:
        fail_usage("leave-one-session-out needs at least two sessions (--seeds)")
    summary = RunSummary("events evaluate", [], {"seeds": seeds, "frames": frames,
                                                 "methods": chosen, "pipeline": pipeline})
    with summary.timed("simulate_s"):
        sessions = simulate_labelled(plan)
    with summary.timed("evaluate_s"):
        evaluation = leave_one_session_out(sessions, chosen, pipeline,
                                           progress=lambda line: typer.echo(line, err=True))
    for path in evaluation.write(out):
        summary.output(path)
    summary.extra["evaluation"] = evaluation.summary
    summary.count("done", len(plan))
    typer.echo(evaluation.markdown())
    finish(ctx, summary, out, json_out)


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: OutOption,
    seeds: SeedsOption = "100-123",
    validation_seeds: SeedsOption = "900-907",
    frames: FramesOption = 2048,
    method: Annotated[str, typer.Option(help="Pixel model.")] = "gradient_boosting",
    json_out: JsonOption = False,
) -> None:
    """Train the events model on simulated sessions; write events_model.joblib and its
    model card (with metrics on held-out seeds) into OUT."""
    from skytriage.events.evaluate import detect, meteor_events, window_auc
    from skytriage.events.model import METHODS
    from skytriage.events.train import fit_model, model_card, session_plan, simulate_labelled

    if method not in METHODS:
        fail_usage(f"unknown model {method!r}; expected {', '.join(METHODS)}")
    plan = session_plan(parse_seeds(seeds), frames)
    held_plan = session_plan(parse_seeds(validation_seeds), frames) if validation_seeds else []
    summary = RunSummary("events train", [], {"seeds": seeds, "frames": frames,
                                              "validation_seeds": validation_seeds,
                                              "method": method})
    with summary.timed("simulate_s"):
        sessions = simulate_labelled(plan)
    with summary.timed("fit_s"):
        model = fit_model(sessions, method)
    validation = None
    if held_plan:
        with summary.timed("validate_s"):
            validation = _validate(model, simulate_labelled(held_plan), detect,
                                   meteor_events, window_auc)
    command = (f"skytriage events train --out {out} --seeds {seeds} --validation-seeds "
               f"{validation_seeds} --frames {frames} --method {method}")
    card = model_card(model, plan, command, validation)
    path = model.save(Path(out) / "events_model.joblib", card)
    summary.output(path)
    summary.extra["validation"] = validation
    summary.count("done", len(plan))
    finish(ctx, summary, out, json_out)


def _validate(model, sessions, detect, meteor_events, window_auc) -> dict:
    """Window AUC and meteor event numbers of ``model`` on held-out sessions."""
    import numpy as np

    aucs, found, meteors, false, frames = [], 0, 0, 0, 0
    for labelled in sessions:
        scores, events = detect(labelled, model)
        aucs.append(window_auc(scores, labelled.is_meteor))
        numbers = meteor_events(events, labelled.candidates, labelled.session)
        found += numbers["found"]
        meteors += numbers["meteors"]
        false += numbers["false_meteors"]
        frames += numbers["frames"]
    return {"sessions": [s.session.name for s in sessions],
            "window_auc_per_session": aucs, "mean_window_auc": float(np.nanmean(aucs)),
            "meteors": meteors, "found": found, "meteor_recall": found / max(meteors, 1),
            "false_meteors": false, "frames": frames,
            "false_per_1000_frames": 1000 * false / max(frames, 1)}


def simulate_events_command(
    ctx: typer.Context,
    out: OutOption,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")
                    ] = 0,
    kind: Annotated[str, typer.Option(help="Scene: ocean, cities, clouds or moonlit.")
                    ] = "cities",
    frames: Annotated[int, typer.Option(min=1, help="Frames T.")] = 2048,
    json_out: JsonOption = False,
) -> None:
    """A Mini-EUSO-like session: cube.fits (T, 48, 48) with TIMEDEL, truth_mask.fits (meteor
    pixel-frames), truth_ids.fits and truth_events.ecsv."""
    from skytriage.events.simulate import SESSION_KINDS, simulate_session

    if kind not in SESSION_KINDS:
        fail_usage(f"--kind {kind!r}: expected one of {', '.join(SESSION_KINDS)}")
    summary = RunSummary("simulate events", [], {"seed": seed, "kind": kind, "frames": frames})
    with summary.timed("simulate_s"):
        session = simulate_session(kind, seed, frames)
        written = session.write(out)
    for path in written.values():
        summary.output(path)
    summary.count("done", frames)
    for kind_name, n in session.events["kind"].value_counts().items():
        summary.count(str(kind_name), int(n))
    finish(ctx, summary, out, json_out)
