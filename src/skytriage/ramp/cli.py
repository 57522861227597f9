"""``skytriage ramp ...`` and ``skytriage simulate ramp``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skytriage.clikit import (
    DefaultCommandGroup,
    JsonOption,
    OutOption,
    finish,
    parse_seeds,
    show_progress,
)
from skytriage.errors import SkytriageInputError
from skytriage.io import RunSummary

app = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=True,
                  help="Cosmic rays, telegraph noise and snowballs in up-the-ramp cubes.")

RefpixOption = Annotated[int, typer.Option("--refpix", min=0,
                                           help="Reference-pixel border width (px).")]


@app.command("run")
def run_command(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Ramp FITS files: (groups, y, x) or "
                                                      "(ints, groups, y, x), DN.")],
    out: OutOption,
    refpix: RefpixOption = 4,
    gain: Annotated[float | None, typer.Option(help="e-/DN (default: header GAIN).")] = None,
    read_noise: Annotated[float | None, typer.Option(
        help="e- per read (default: header RDNOISE, else measured on the reference "
             "pixels).")] = None,
    saturation: Annotated[float | None, typer.Option(
        help="Saturation in DN (default: header SATURATE, else 65535).")] = None,
    model: Annotated[str, typer.Option(
        help="Network fused with the rules: 'shipped', 'none' (rules only) or a ramp_net.pt "
             "from `skytriage ramp train`.")] = "shipped",
    overwrite: Annotated[bool, typer.Option(help="Redo inputs whose results exist.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Flag cosmic rays, telegraph noise and snowballs; write mask.fits, slope.fits,
    detections.json and report.html (one sub-folder per input when there are several)."""
    from rich.progress import Progress

    from skytriage.ramp.pipeline import run

    network = _load_model(model)
    summary = RunSummary("ramp", inputs, {"refpix": refpix, "gain": gain,
                                          "read_noise": read_noise, "saturation": saturation,
                                          "model": model if network else "none"})
    with Progress(disable=not show_progress(), transient=True) as bar:
        for path in inputs:
            target = Path(out) if len(inputs) == 1 else Path(out) / _stem(path)
            if not overwrite and _is_done(path, target):
                summary.count("skipped")
                continue
            task = bar.add_task(path.name, total=1)
            try:
                with summary.timed("detect_s"):
                    result = run(path, refpix=refpix, gain=gain, read_noise=read_noise,
                                 saturation=saturation, model=network,
                                 progress=lambda done, total, t=task: bar.update(
                                     t, completed=done, total=total))
            except SkytriageInputError as err:
                summary.fail(path, err)
                continue
            with summary.timed("write_s"):
                for written in result.write(target).values():
                    summary.output(written)
            summary.count("done")
            for name, n in result.counts().items():
                summary.count(name, n)
    finish(ctx, summary, out, json_out)


def _load_model(choice: str):
    """The network to fuse: the shipped one, none, or a checkpoint file."""
    from skytriage.ramp.model import RampNet, shipped_model

    if choice == "none":
        return None
    if choice == "shipped":
        return shipped_model()
    return RampNet.load(choice)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_done(path: Path, target: Path) -> bool:
    """True when ``target`` holds a result newer than the input (a rerun resumes)."""
    done = target / "detections.json"
    try:
        return done.stat().st_mtime >= path.stat().st_mtime
    except OSError:
        return False


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    results: Annotated[list[Path], typer.Argument(help="Result folders of `skytriage ramp` "
                                                       "on simulated ramps.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write "
                                             "scores.csv (default: the first result).")
                   ] = None,
    json_out: JsonOption = False,
) -> None:
    """Per-class pixel and event recall/precision and false events per megapixel against
    the truth that `skytriage simulate ramp` wrote beside each ramp."""
    import json

    from skytriage.io import read_frame, write_csv
    from skytriage.ramp.evaluate import mean_scores, score, score_table
    from skytriage.ramp.simulate import read_truth

    out = out or results[0]
    summary = RunSummary("ramp evaluate", results, {})
    runs = []
    for folder in results:
        try:
            info = json.loads((folder / "detections.json").read_text())
        except (OSError, ValueError) as err:
            summary.fail(folder, SkytriageInputError(folder, f"no readable detections.json "
                                                             f"({err})"))
            continue
        try:
            truth = read_truth(info["source"])
            mask = read_frame(folder / "mask.fits", dtype=None).data
        except SkytriageInputError as err:
            summary.fail(folder, err)
            continue
        runs.append(score(mask, truth, refpix=info["info"]["refpix"]))
        summary.count("done")
    if not runs:
        finish(ctx, summary, out, json_out)
    pooled = mean_scores(runs)
    table = score_table({"skytriage": pooled})
    Path(out).mkdir(parents=True, exist_ok=True)
    summary.output(write_csv(Path(out) / "scores.csv", table))
    summary.extra["scores"] = pooled
    typer.echo(table.to_markdown(index=False, floatfmt=".4f"))
    finish(ctx, summary, out, json_out)


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: OutOption,
    seeds: Annotated[str, typer.Option(help="Simulated ramps to train on: FIRST-LAST.")
                     ] = "1000-1007",
    validation_seeds: Annotated[str, typer.Option(help="Held-out ramps for the model card "
                                                       "and the fusion check: FIRST-LAST.")
                                ] = "2000-2003",
    groups: Annotated[str, typer.Option(help="Ramp lengths to train on, comma-separated.")
                      ] = "20,100",
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 300,
    width: Annotated[int, typer.Option(min=2, help="Channels of the U-Net's first level.")
                     ] = 4,
    config: Annotated[Path | None, typer.Option(help="YAML RampSimConfig of the training "
                                                     "ramps (default: the simulator's).")
                      ] = None,
    json_out: JsonOption = False,
) -> None:
    """Train the 3-D U-Net that arbitrates the rules' telegraph-noise candidates; write
    ramp_net.pt and its model card (ramp_net.json) into OUT."""
    import sys

    from skytriage.nn import configure_torch
    from skytriage.ramp.model import SHIPPED_NAME, RampNet
    from skytriage.ramp.simulate import RampSimConfig
    from skytriage.ramp.train import held_out_scores, training_set

    configure_torch()
    settings = RampSimConfig.from_yaml(config) if config else RampSimConfig()
    lengths = [int(g) for g in groups.split(",")]
    summary = RunSummary("ramp train", [config] if config else [],
                         {"seeds": seeds, "validation_seeds": validation_seeds,
                          "groups": lengths, "steps": steps, "width": width})
    with summary.timed("simulate_s"):
        inputs, labels = training_set(settings, parse_seeds(seeds), lengths, progress=typer.echo)
        check_x, check_y = training_set(settings, parse_seeds(validation_seeds)[:1], lengths[-1:])
    net = RampNet(width=width)
    with summary.timed("fit_s"):
        history = net.fit(inputs, labels, steps=steps, validation=(check_x[0], check_y[0]),
                          progress=show_progress())
    with summary.timed("validate_s"):
        scores = held_out_scores(net, settings, parse_seeds(validation_seeds), lengths)
    card = {"model": "ramp 3-D U-Net (telegraph-noise arbiter)",
            "parameters": net.n_parameters(),
            "training_data": {"simulator": "skytriage simulate ramp", "seeds": seeds,
                              "groups": lengths, "config": settings.as_dict(),
                              "patches": [len(x) for x in inputs]},
            "seed": 0, "command": " ".join(["skytriage", *sys.argv[1:]]),
            "history": history.as_dict(), "held_out": scores}
    Path(out).mkdir(parents=True, exist_ok=True)
    summary.output(net.save(Path(out) / SHIPPED_NAME, card))
    summary.extra["held_out"] = scores
    summary.count("done", sum(len(x) for x in inputs))
    finish(ctx, summary, out, json_out)


def simulate_ramp_command(
    ctx: typer.Context,
    out: OutOption,
    seed: Annotated[int, typer.Option(help="Random seed of the first ramp; the same seed "
                                           "gives the same data.")] = 0,
    count: Annotated[int, typer.Option(min=1, help="Ramps to write (seeds SEED, SEED+1, "
                                                   "...).")] = 1,
    config: Annotated[Path | None, typer.Option(
        help="YAML file of RampSimConfig options (shape, n_groups, sky, cr_rate, ...).")
                      ] = None,
    size: Annotated[int | None, typer.Option(min=16, help="Array side (px); overrides "
                                                          "the config.")] = None,
    groups: Annotated[int | None, typer.Option(min=3, help="Groups per integration; "
                                                           "overrides the config.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Labelled H2RG ramps: ramp_SEED.fits (uint16 DN) with ramp_SEED_truth.fits (mask,
    event ids) and ramp_SEED_events.ecsv, plus the config used (config.yaml)."""
    import yaml

    from skytriage.ramp.simulate import RampSimConfig, simulate_ramp, write_simulated

    settings = RampSimConfig.from_yaml(config) if config else RampSimConfig()
    overrides = {}
    if size is not None:
        overrides["shape"] = [size, size]
    if groups is not None:
        overrides["n_groups"] = groups
    if overrides:
        settings = RampSimConfig.from_dict({**settings.as_dict(), **overrides}, config or "")
    summary = RunSummary("simulate ramp", [config] if config else [],
                         {"seed": seed, "count": count, **settings.as_dict()})
    Path(out).mkdir(parents=True, exist_ok=True)
    config_path = Path(out) / "config.yaml"
    config_path.write_text(yaml.safe_dump(settings.as_dict(), sort_keys=False))
    summary.output(config_path)
    for n in range(count):
        with summary.timed("simulate_s"):
            sim = simulate_ramp(settings, seed + n)
        for path in write_simulated(sim, out, f"ramp_{seed + n:04d}").values():
            summary.output(path)
        summary.count("done")
        for kind, rows in sim.events.groupby("kind"):
            summary.count(f"{kind}_events", int(rows["visible"].sum()))
    finish(ctx, summary, out, json_out)

