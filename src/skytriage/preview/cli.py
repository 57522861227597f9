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
    show_progress,
)
from skytriage.io import RunSummary
from skytriage.preview.detect import DEFAULT_THRESHOLD

app = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=True,
                  help="Which frames are anomalous, and why (satellite, slew, cloud, ...).")


@app.command("run")
def run_command(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="FITS frames or folders (a folder is a "
                                                      "dataset, a folder of folders a night).")],
    out: OutOption,
    threshold: Annotated[float, typer.Option(help="Robust z-score above which a frame is "
                                                  "anomalous.")] = DEFAULT_THRESHOLD,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    json_out: JsonOption = False,
) -> None:
    """Measure every frame, score it within its dataset, write frames.parquet and report.html."""
    from skytriage.preview import run

    summary = RunSummary("preview", inputs, {"threshold": threshold, "workers": workers,
                                             "scheduler": scheduler})
    with summary.timed("measure_s"):
        result = run(inputs, threshold=threshold, workers=workers, scheduler=scheduler,
                     cache_dir=out, progress=show_progress())
    for failure in result.failed:
        summary.fail(failure["path"], failure["error"])
    summary.count("done", len(result.frames))
    if len(result.frames):
        summary.count("anomalies", int(result.frames["is_anomaly"].sum()))
        summary.count("datasets", int(result.frames["dataset"].nunique()))
        with summary.timed("write_s"):
            for path in result.write(out).values():
                summary.output(path)
        typer.echo(f"report: {(Path(out) / 'report.html').resolve()}")
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


def simulate_frames_command(
    ctx: typer.Context,
    out: OutOption,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
    datasets: Annotated[int, typer.Option(min=1, help="Number of datasets (fields).")] = 3,
    frames: Annotated[int, typer.Option(min=1, help="Frames per dataset.")] = 40,
    size: Annotated[str, typer.Option(help="Frame size WIDTHxHEIGHT in pixels, up to the "
                                           "full 9576x6388.")] = "1024x1024",
    json_out: JsonOption = False,
) -> None:
    """Labelled sCMOS datasets: folders of FITS frames plus truth.csv / truth.parquet."""
    from rich.progress import Progress

    from skytriage.preview.simulate import simulate_frames

    shape = _parse_size(size)
    summary = RunSummary("simulate frames", [], {"seed": seed, "datasets": datasets,
                                                 "frames": frames, "size": size})
    with Progress(disable=not show_progress()) as bar, summary.timed("simulate_s"):
        task = bar.add_task("simulate", total=datasets * frames)
        truth = simulate_frames(out, n_datasets=datasets, frames_per_dataset=frames,
                                shape=shape, seed=seed,
                                progress=lambda done, total: bar.update(task, completed=done))
    summary.count("done", len(truth))
    summary.count("anomalous", int((truth["label"] != "normal").sum()))
    summary.output(Path(out) / "truth.csv")
    finish(ctx, summary, out, json_out)
