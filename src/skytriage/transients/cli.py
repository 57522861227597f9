"""``skytriage transients ...`` and ``skytriage simulate transients``."""

from __future__ import annotations

import sys
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
                  help="New and changed sources in reference/science image pairs.")

ModelOption = Annotated[Path | None, typer.Option(
    "--model", help="CNN checkpoint (.pt) to use instead of the shipped one.")]


@app.command("run")
def run_command(
    ctx: typer.Context,
    ref: Annotated[Path, typer.Argument(help="Reference image (FITS).")],
    sci: Annotated[Path, typer.Argument(help="Science image (FITS).")],
    out: OutOption,
    model: ModelOption = None,
    no_cnn: Annotated[bool, typer.Option("--no-cnn", help="Difference and extraction alone: "
                                                          "claim every candidate.")] = False,
    method: Annotated[str, typer.Option(help="Subtraction: zogy or gaussian "
                                             "(Alard-Lupton-style kernel match).")] = "zogy",
    threshold: Annotated[float, typer.Option(min=1.0, help="Candidate threshold on |S_corr| "
                                                          "(sigma).")] = 5.0,
    score_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="CNN score from "
                                                   "which a candidate is claimed.")] = 0.5,
    catalogue: Annotated[Path | None, typer.Option(help="Stars with x, y (science px) and mag "
                                                        "(ECSV or CSV), for the zero point "
                                                        "when the headers have none.")] = None,
    truth: Annotated[Path | None, typer.Option(help="Truth catalogue (truth.ecsv of skytriage "
                                                    "simulate transients): evaluate.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Align, subtract (ZOGY), find and score candidates, measure them; write
    transients.ecsv, candidates.ecsv, diff.fits, scorr.fits and report.html."""
    from skytriage.errors import SkytriageInputError
    from skytriage.transients import run

    if method not in ("zogy", "gaussian"):
        fail_usage(f"--method {method!r}: expected zogy or gaussian")
    summary = RunSummary("transients", [ref, sci], {
        "model": str(model) if model else "shipped", "use_cnn": not no_cnn, "method": method,
        "threshold": threshold, "score_threshold": score_threshold,
        "catalogue": str(catalogue) if catalogue else None})
    try:
        stars = _read_catalogue(catalogue) if catalogue else None
        with summary.timed("run_s"):
            result = run(ref, sci, model=model, use_cnn=not no_cnn, method=method,
                         threshold=threshold, score_threshold=score_threshold,
                         catalogue=stars)
    except SkytriageInputError as err:
        summary.fail(err.path, err)
        finish(ctx, summary, out, json_out)
    with summary.timed("write_s"):
        for path in result.write(out).values():
            summary.output(path)
    if truth is not None:
        from skytriage.transients.evaluate import evaluate_pair, read_truth

        evaluation = evaluate_pair(result.transients, read_truth(truth),
                                   result.prepared.sci.shape)
        summary.extra["evaluation"] = evaluation
    summary.count("done")
    summary.count("candidates", len(result.candidates))
    summary.count("transients", len(result.transients))
    for kind in ("new", "brightening", "fading"):
        summary.count(kind, int((result.transients["kind"] == kind).sum()))
    summary.extra["meta"] = {k: v for k, v in result.meta.items() if k != "timings"}
    summary.timings.update({f"step_{k}": v for k, v in result.meta["timings"].items()})
    finish(ctx, summary, out, json_out)


def _read_catalogue(path: Path):
    """Stars for the zero point: a table with x, y, mag."""
    from skytriage.io.tables import read_table

    return read_table(path, {"x", "y", "mag"}, "catalogue")


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: OutOption,
    seeds: Annotated[str, typer.Option(help="Simulated pairs to train on: FIRST-LAST.")
                     ] = "1000-1059",
    validation_seeds: Annotated[str, typer.Option(help="Held-out pairs: FIRST-LAST.")
                                ] = "2000-2004",
    size: Annotated[int, typer.Option(min=128, help="Side of the simulated pairs (px).")
                    ] = 512,
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 1000,
    batch: Annotated[int, typer.Option(min=2, help="Tiles per step.")] = 32,
    layout: Annotated[str, typer.Option(help="candidates: tiles centred on S_corr peaks (the "
                                             "full method's scorer, transients_cnn.pt); grid: "
                                             "the study's layout, transient anywhere in the "
                                             "tile (the baseline, transients_grid_cnn.pt).")
                      ] = "candidates",
    seed: Annotated[int, typer.Option(help="Seed of the training run.")] = 0,
    init: Annotated[Path | None, typer.Option(help="Start from this checkpoint (.pt) instead "
                                                   "of random weights.")] = None,
    transients_per_mpix: Annotated[float | None, typer.Option(
        min=1.0, help="Transients per million pixels of the training pairs; default 120 "
                      "for candidates, 40 (the evaluation's) for grid.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Train the real/bogus and localisation CNN on simulated pairs (flips and 90/180/270
    rotations as augmentations); write transients_cnn.pt (or transients_grid_cnn.pt) and its
    model card into OUT."""
    from skytriage.clikit import show_progress
    from skytriage.transients.model import GRID_MODEL_NAME, MODEL_NAME, TransientScorer
    from skytriage.transients.simulate import PairConfig
    from skytriage.transients.train import tile_set

    if layout not in ("candidates", "grid"):
        fail_usage(f"--layout {layout!r}: expected candidates or grid")
    summary = RunSummary("transients train", [], {"seeds": seeds, "validation_seeds":
                                                  validation_seeds, "size": size,
                                                  "steps": steps, "seed": seed,
                                                  "batch": batch, "layout": layout,
                                                  "init": str(init) if init else None,
                                                  "transients_per_mpix": transients_per_mpix})
    # the grid layout's target is the transient nearest the tile centre: at 120 per Mpix
    # a second one lies within reach of a third of the tiles, so it trains at the
    # evaluation density by default
    density = transients_per_mpix or (40.0 if layout == "grid" else 120.0)
    config = PairConfig(shape=(size, size), transients_per_mpix=density)
    with summary.timed("simulate_s"):
        train = tile_set(parse_seeds(seeds), config, layout)
        held_out = tile_set(parse_seeds(validation_seeds), config, layout)
    scorer = TransientScorer.load(init) if init else TransientScorer.new()
    start = {"checkpoint": str(init), "command": scorer.card.get("command"),
             "steps": scorer.card.get("steps")} if init else None
    with summary.timed("fit_s"):
        history = scorer.fit(train.tiles, train.labels, train.offsets, steps=steps, seed=seed,
                             batch=batch,
                             validation=(held_out.tiles, held_out.labels, held_out.offsets),
                             progress=show_progress())
    metrics = _tile_metrics(scorer, held_out)
    scorer.card = {
        "model": "transients CNN: real/bogus score and offset of 64x64 (ref, sci, diff) tiles"
                 + (", the study's grid layout" if layout == "grid" else
                    ", centred on candidates"),
        "architecture": "5 x (3x3 conv, BN, ReLU, 2x2 max-pool, dropout 0.2), 1x1-conv "
                        "sigmoid spatial attention, GAP, dense 128, head (logit, dx, dy)",
        "training_data": {"simulator": "skytriage simulate transients", "seeds": seeds,
                          "size": [size, size], "transients_per_mpix": density,
                          "tiles": len(train), "real_fraction": float(train.labels.mean())},
        "validation_data": {"seeds": validation_seeds, "tiles": len(held_out)},
        "augmentations": "rotations by 90/180/270 degrees, left-right and up-down flips",
        "seed": seed, "steps": steps, "batch": batch, "layout": layout, "init": start,
        "command": " ".join(["skytriage", *sys.argv[1:]]),
        "history": history.as_dict(), "held_out_tile_metrics": metrics}
    Path(out).mkdir(parents=True, exist_ok=True)
    name = GRID_MODEL_NAME if layout == "grid" else MODEL_NAME
    summary.output(scorer.save(Path(out) / name))
    summary.count("done", len(train))
    summary.extra["held_out_tile_metrics"] = metrics
    finish(ctx, summary, out, json_out)


def _tile_metrics(scorer, tiles) -> dict:
    """Accuracy, purity and completeness at 0.5, and offset errors on held-out tiles."""
    import numpy as np

    score, offset = scorer.predict(tiles.tiles)
    claimed, real = score >= 0.5, tiles.labels == 1
    error = np.hypot(*(offset[real] - tiles.offsets[real]).T)
    return {"tiles": int(len(tiles)), "accuracy": float(np.mean(claimed == real)),
            "purity": float(real[claimed].mean()) if claimed.any() else None,
            "completeness": float(claimed[real].mean()) if real.any() else None,
            "offset_within_1px": float(np.mean(error < 1)) if real.any() else None,
            "offset_median_px": float(np.median(error)) if real.any() else None}


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    pairs: Annotated[list[Path], typer.Argument(help="Folders from skytriage simulate "
                                                     "transients (ref.fits, sci.fits, "
                                                     "truth.ecsv).")],
    out: OutOption,
    model: ModelOption = None,
    grid_model: Annotated[Path | None, typer.Option(
        "--grid-model", help="CNN checkpoint of the grid baseline instead of the shipped "
                             "one.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Completeness and purity against S/N and delta-mag, position errors (within 1/2/5 px,
    against delta-mag and edge distance, polar plot), robustness over the five
    augmentations; for the full method, difference + extraction alone, and the CNN alone."""
    from skytriage.transients.evaluate import evaluate_folders

    summary = RunSummary("transients evaluate", pairs, {
        "model": str(model) if model else "shipped",
        "grid_model": str(grid_model) if grid_model else "shipped"})
    with summary.timed("evaluate_s"):
        evaluation = evaluate_folders(pairs, model=model, grid_model=grid_model,
                                      failed=summary.fail)
    if evaluation is not None:
        for path in evaluation.write(out):
            summary.output(path)
        summary.extra["evaluation"] = evaluation.summary
        summary.count("done", evaluation.summary["pairs"])
        typer.echo(evaluation.markdown())
    finish(ctx, summary, out, json_out)


def simulate_transients_command(
    ctx: typer.Context,
    out: OutOption,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
    pairs: Annotated[int, typer.Option(min=1, help="Number of pairs (seeds SEED, SEED+1, ...)."
                                       )] = 1,
    size: Annotated[int, typer.Option(min=128, max=20000, help="Side of the science image "
                                                               "(px).")] = 1024,
    no_wcs: Annotated[bool, typer.Option("--no-wcs", help="Leave the WCS out of the headers "
                                                          "(alignment by stars).")] = False,
    no_zero_point: Annotated[bool, typer.Option("--no-zero-point", help="Leave MAGZP out of "
                                                                        "the headers.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Reference/science pairs with transients, variables and nuisances: OUT/pair_NNN/
    ref.fits, sci.fits, truth.ecsv, nuisances.ecsv."""
    from skytriage.transients.simulate import PairConfig, simulate_transients

    summary = RunSummary("simulate transients", [], {"seed": seed, "pairs": pairs, "size": size,
                                                     "wcs": not no_wcs,
                                                     "zero_point": not no_zero_point})
    config = PairConfig(shape=(size, size), wcs=not no_wcs, zero_point=not no_zero_point)
    with summary.timed("simulate_s"):
        folders = simulate_transients(out, n_pairs=pairs, seed=seed, config=config)
    for folder in folders:
        summary.output(folder)
    summary.count("done", len(folders))
    finish(ctx, summary, out, json_out)
