"""``skytriage preview ...`` and ``skytriage simulate frames``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from skytriage.clikit import (
    DefaultCommandGroup,
    JsonOption,
    OutOption,
    SchedulerOption,
    WorkersOption,
    fail_usage,
    finish,
    parse_seeds,
    show_progress,
)
from skytriage.io import RunSummary

app = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=True,
                  help="Which frames are anomalous, and why (satellite, slew, cloud, ...).")


ModelOption = Annotated[Path | None, typer.Option(
    "--model", help="Classifier (.joblib) to use instead of the shipped one.")]


@app.command("run")
def run_command(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="FITS frames or folders (a folder is a "
                                                      "dataset, a folder of folders a night).")],
    out: OutOption,
    model: ModelOption = None,
    truth: Annotated[Path | None, typer.Option(
        help="Truth table (e.g. truth.csv of skytriage simulate): evaluate and add the "
             "tables to the report.")] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    json_out: JsonOption = False,
) -> None:
    """Measure every frame, compare it with its dataset, name its anomaly; write
    frames.parquet, frames.csv and report.html."""
    from skytriage.preview import evaluate, run

    summary = RunSummary("preview", inputs, {"model": str(model) if model else "shipped",
                                             "workers": workers, "scheduler": scheduler,
                                             "truth": str(truth) if truth else None})
    with summary.timed("measure_s"):
        result = run(inputs, model=model, workers=workers, scheduler=scheduler,
                     cache_dir=out, progress=show_progress())
    for failure in result.failed:
        summary.fail(failure["path"], failure["error"])
    summary.extra["flagged"] = result.flagged
    summary.count("done", len(result.frames))
    if len(result.frames):
        summary.count("anomalies", int(result.frames["is_anomaly"].sum()))
        summary.count("datasets", int(result.frames["dataset"].nunique()))
        evaluation = None
        if truth is not None:
            evaluation = evaluate(result.frames, _read_truth(truth))
            summary.extra["evaluation"] = evaluation.summary
            for path in evaluation.write(out):
                summary.output(path)
        with summary.timed("write_s"):
            for path in result.write(out, evaluation).values():
                summary.output(path)
        typer.echo(f"report: {(Path(out) / 'report.html').resolve()}")
    finish(ctx, summary, out, json_out)


def _read_truth(path: Path):
    """A truth table (CSV or Parquet) with dataset, frame, label, labels."""
    from skytriage.io.tables import read_table

    return read_table(path, {"dataset", "frame", "label", "labels"}, "truth table")


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    result: Annotated[Path, typer.Argument(help="A preview output folder (frames.parquet).")],
    truth: Annotated[Path, typer.Option(help="Truth table: CSV or Parquet with dataset, "
                                             "frame, label, labels.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write the "
                                             "tables (default: the result folder).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Welch t-tests per feature and class, detector and per-class scores, confusion matrix:
    classifier, DBSCAN and Isolation Forest side by side."""
    import pandas as pd

    from skytriage.errors import SkytriageInputError
    from skytriage.preview import PreviewResult, evaluate

    out = out or result
    summary = RunSummary("preview evaluate", [result], {"truth": str(truth)})
    frames_path = result / "frames.parquet"
    if not frames_path.exists():
        raise SkytriageInputError(result, "no frames.parquet: not a preview result")
    frames = pd.read_parquet(frames_path)
    evaluation = evaluate(frames, _read_truth(truth))
    for path in evaluation.write(out):
        summary.output(path)
    summary.extra["evaluation"] = evaluation.summary
    summary.count("done", evaluation.summary["frames"])
    if (result / "summary.json").exists() and out == result:
        PreviewResult(frames).write(out, evaluation)
    typer.echo(evaluation.markdown())
    finish(ctx, summary, out, json_out)


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: OutOption,
    seeds: Annotated[str, typer.Option(help="Simulated nights to train on: FIRST-LAST.")
                     ] = "1000-1029",
    validation_seeds: Annotated[str, typer.Option(help="Held-out nights for the model card: "
                                                       "FIRST-LAST.")] = "2000-2002",
    datasets: Annotated[int, typer.Option(min=1, help="Datasets per night.")] = 3,
    frames: Annotated[int, typer.Option(min=4, help="Frames per dataset.")] = 40,
    sizes: Annotated[str, typer.Option(help="Frame sizes used in turn, WxH,WxH,...")
                     ] = "512x512,768x512,768x768,1024x1024",
    labels: Annotated[str | None, typer.Option(help="Hand labels: a CSV (path, frame, "
                                                    "label) or the dashboard's database URL.")
                      ] = None,
    result: Annotated[list[Path] | None, typer.Option(help="Preview result(s) whose frames "
                                                           "the hand labels name.")] = None,
    no_simulated: Annotated[bool, typer.Option(help="Train on hand labels only.")] = False,
    work: Annotated[Path | None, typer.Option(help="Folder for the simulated nights "
                                                   "(default OUT/training-data); reruns "
                                                   "reuse it.")] = None,
    workers: WorkersOption = None,
    json_out: JsonOption = False,
) -> None:
    """Train the frame classifier on simulated nights and/or hand labels; write
    preview_classifier.joblib, its model card and the training table into OUT."""
    import sys

    import pandas as pd

    from skytriage.preview import train as training

    summary = RunSummary("preview train", [labels] if labels else [],
                         {"seeds": seeds, "validation_seeds": validation_seeds,
                          "datasets": datasets, "frames": frames, "sizes": sizes,
                          "labels": labels, "no_simulated": no_simulated})
    work = work or out / "training-data"
    plan = training.SimulationPlan(seeds=parse_seeds(seeds), n_datasets=datasets,
                                   frames_per_dataset=frames,
                                   sizes=[_parse_size(s) for s in sizes.split(",")])
    tables = []
    with summary.timed("simulate_and_measure_s"):
        if not no_simulated:
            tables.append(training.simulated_table(plan, work, workers=workers,
                                                   progress=typer.echo))
    n_hand = 0
    if labels:
        if not result:
            fail_usage("--labels needs --result: the preview result(s) the labels refer to")
        hand = training.hand_labelled_table(result, training.load_labels(labels))
        n_hand = len(hand)
        tables.append(hand)
    if not tables or sum(len(t) for t in tables) == 0:
        fail_usage("nothing to train on: give seeds, or --labels with --result")
    table = pd.concat(tables, ignore_index=True)
    with summary.timed("fit_s"):
        model = training.fit_classifier(table)
    validation = None
    if validation_seeds and not no_simulated:
        held_out = training.SimulationPlan(seeds=parse_seeds(validation_seeds),
                                           n_datasets=datasets, frames_per_dataset=frames,
                                           sizes=plan.sizes)
        with summary.timed("validate_s"):
            validation = training.validation_metrics(
                model, training.simulated_table(held_out, work, workers=workers))
    card = training.model_card(model, table, None if no_simulated else plan,
                               " ".join(["skytriage", *sys.argv[1:]]), validation, n_hand)
    summary.output(training.save_model(model, table, card, out))
    summary.count("done", len(table))
    summary.count("hand_labelled", n_hand)
    summary.extra["validation"] = validation
    finish(ctx, summary, out, json_out)


def _parse_size(text: str) -> tuple[int, int]:
    """``"9576x6388"`` (width x height) -> (ny, nx); a single number means a square."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*", text)
    if not match:
        fail_usage(f"--size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1024x1024")
    width = int(match.group(1))
    height = int(match.group(2) or width)
    if not (16 <= width <= 20000 and 16 <= height <= 20000):
        fail_usage(f"--size {text!r}: each side must be 16..20000 px")
    return height, width


def _parse_range(text: str, option: str) -> tuple[float, float]:
    """``"1.8-3.8"`` -> (1.8, 3.8), both positive, low <= high."""
    match = re.fullmatch(r"\s*([\d.]+)\s*-\s*([\d.]+)\s*", text)
    if not match or not 0 < float(match.group(1)) <= float(match.group(2)):
        fail_usage(f"{option} {text!r}: expected LOW-HIGH with 0 < LOW <= HIGH, e.g. 1.8-3.8")
    return float(match.group(1)), float(match.group(2))


def simulate_frames_command(
    ctx: typer.Context,
    out: OutOption,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
    datasets: Annotated[int, typer.Option(min=1, help="Number of datasets (fields).")] = 3,
    frames: Annotated[int, typer.Option(min=1, help="Frames per dataset.")] = 40,
    size: Annotated[str, typer.Option(help="Frame size WIDTHxHEIGHT in pixels, up to the "
                                           "full 9576x6388.")] = "1024x1024",
    psf: Annotated[str, typer.Option(help="Seeing profile: moffat or gaussian.")] = "moffat",
    fwhm: Annotated[str, typer.Option(help="Range of the seeing FWHM in px, LOW-HIGH.")
                    ] = "1.8-3.8",
    json_out: JsonOption = False,
) -> None:
    """Labelled sCMOS datasets: folders of FITS frames plus truth.csv / truth.parquet."""
    from rich.progress import Progress

    from skytriage.preview.simulate import PSF_KINDS, simulate_frames

    shape = _parse_size(size)
    fwhm_range = _parse_range(fwhm, "--fwhm")
    if psf not in PSF_KINDS:
        fail_usage(f"--psf {psf!r}: expected one of {', '.join(PSF_KINDS)}")
    summary = RunSummary("simulate frames", [], {"seed": seed, "datasets": datasets,
                                                 "frames": frames, "size": size, "psf": psf,
                                                 "fwhm": fwhm})
    with Progress(disable=not show_progress()) as bar, summary.timed("simulate_s"):
        task = bar.add_task("simulate", total=datasets * frames)
        truth = simulate_frames(out, n_datasets=datasets, frames_per_dataset=frames,
                                shape=shape, seed=seed, psf=psf, fwhm_range=fwhm_range,
                                progress=lambda done, total: bar.update(task, completed=done))
    summary.count("done", len(truth))
    summary.count("anomalous", int((truth["label"] != "normal").sum()))
    summary.output(Path(out) / "truth.csv")
    finish(ctx, summary, out, json_out)
