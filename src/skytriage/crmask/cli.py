"""``skytriage crmask ...`` and ``skytriage simulate crmask``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from skytriage.clikit import (
    DefaultCommandGroup,
    JsonOption,
    OutOption,
    fail_usage,
    finish,
    parse_seeds,
    show_progress,
)
from skytriage.errors import SkytriageInputError
from skytriage.io import RunSummary

app = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=True,
                  help="Cosmic-ray masks and inpainting for single exposures.")

MethodOption = Annotated[str, typer.Option(
    "--method", help="unet (the shipped network) or lacosmic (astroscrappy).")]


def _range(text: str, name: str) -> tuple[float, float]:
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*[,:]\s*([0-9.eE+-]+)\s*", text)
    if not match or float(match[1]) > float(match[2]):
        fail_usage(f"--{name} must be LOW,HIGH (e.g. 1.2,2.0), not {text!r}")
    return float(match[1]), float(match[2])


def _shape(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        fail_usage(f"--size must be WIDTHxHEIGHT, e.g. 512x512, not {text!r}")
    return int(match[2]), int(match[1])


@app.command("run")
def run_command(
    ctx: typer.Context,
    images: Annotated[list[Path], typer.Argument(help="FITS exposures (ADU).")],
    out: OutOption,
    method: MethodOption = "unet",
    gain: Annotated[float | None, typer.Option(help="e-/ADU (default: header GAIN, else 1).")
                    ] = None,
    readnoise: Annotated[float | None, typer.Option(help="e- (default: header RDNOISE).")
                         ] = None,
    threshold: Annotated[float | None, typer.Option(
        help="unet: the U-Net's probability cut (default: the model's; the star-region "
             "network keeps its own); lacosmic: sigclip (4.5).")] = None,
    saturation: Annotated[float | None, typer.Option(
        help="Saturation level in ADU (default: header SATURATE, else a plateau at the "
             "image maximum).")] = None,
    inpaint: Annotated[str, typer.Option(help="median (masked 5x5) or unet (learned).")
                       ] = "median",
    model: Annotated[Path | None, typer.Option(help="Mask network checkpoint (.pt).")] = None,
    star_net: Annotated[bool, typer.Option(
        help="unet: let the star-region network decide on stars and galaxies (more hits "
             "on stars found, better photometry; 2-4x the time; docs/results.md).")
    ] = False,
    star_net_model: Annotated[Path | None, typer.Option(
        help="Star-region network checkpoint (.pt; default: the shipped one).")] = None,
    star_floor: Annotated[float | None, typer.Option(
        help="unet: near bright sources, grow flagged hits into pixels whose probability "
             "passes this lower cut (0.2: more hits on star cores found, F1 a little "
             "lower; see docs/results.md).")] = None,
    star_model: Annotated[bool, typer.Option(
        help="Fit every star with one Moffat profile and judge the pixels on stars by "
             "their excess over it: more hits on stars found, seconds per megapixel "
             "slower (docs/results.md).")] = False,
    point_source_test: Annotated[bool, typer.Option(
        help="Give back small flagged features the image's star profile fits better than "
             "a cosmic-ray spot (faint star cores; 1-5 s per image).")] = True,
    overwrite: Annotated[bool, typer.Option(help="Redo inputs whose outputs exist.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Write mask.fits (bit 1 cosmic ray, 8 bad, 32 saturated), clean.fits and summary.json;
    several images go to one sub-folder per file name."""
    from skytriage.crmask.pipeline import run_file

    params = {"method": method, "gain": gain, "readnoise": readnoise, "threshold": threshold,
              "saturation": saturation, "inpaint": inpaint, "star_net": star_net,
              "star_floor": star_floor,
              "star_model": star_model, "point_source_test": point_source_test,
              "model": str(model) if model else "shipped",
              "star_net_model": str(star_net_model) if star_net_model else "shipped"}
    summary = RunSummary("crmask", images, params)
    results = {}
    for path in images:
        target = out if len(images) == 1 else out / path.name.split(".")[0]
        if not overwrite and (target / "mask.fits").exists() and (target / "clean.fits").exists():
            summary.count("skipped (done before)")
            continue
        try:
            result = run_file(path, method=method, gain=gain, readnoise=readnoise,
                              threshold=threshold, saturation=saturation, inpaint=inpaint,
                              model=str(model) if model else None, star_net=star_net,
                              star_net_model=str(star_net_model) if star_net_model else None,
                              star_floor=star_floor,
                              star_model=star_model, point_source_test=point_source_test)
        except SkytriageInputError as err:
            summary.fail(path, err)
            continue
        for written in result.write(target, command=" ".join(summary.argv)):
            summary.output(written)
        results[str(path)] = result.info
        summary.count("done")
        summary.count("cosmic_ray_pixels", result.info["cosmic_ray_pixels"])
    summary.extra["images"] = results
    finish(ctx, summary, out, json_out)


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: OutOption,
    seeds: Annotated[str, typer.Option(help="Simulation seeds to train on, FIRST-LAST.")
                     ] = "1-64",
    validation_seeds: Annotated[str, typer.Option(help="Seeds for validation.")] = "900-905",
    size: Annotated[str, typer.Option(help="Simulated image size, WxH.")] = "384x384",
    steps: Annotated[int, typer.Option(help="Optimiser steps of the mask network.")] = 1000,
    inpaint_steps: Annotated[int, typer.Option(help="Steps of the inpainting network.")
                             ] = 400,
    width: Annotated[int, typer.Option(help="Channels of the first U-Net level.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and batches.")] = 0,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    init: Annotated[Path | None, typer.Option(
        help="Folder with crmask_unet.pt and crmask_inpaint.pt to train on from.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Train the mask and inpainting networks on simulated exposures; write
    crmask_unet.pt and crmask_inpaint.pt with their model cards."""
    from skytriage.crmask.train import train_and_save

    summary = RunSummary("crmask train", [], {"seeds": seeds, "size": size, "steps": steps})
    with summary.timed("train_s"):
        cards = train_and_save(out, parse_seeds(seeds), parse_seeds(validation_seeds), _shape(size),
                               steps=steps, inpaint_steps=inpaint_steps, width=width,
                               seed=seed, command=" ".join(summary.argv),
                               init=str(init) if init else None, lr=lr,
                               progress=show_progress())
    summary.extra["cards"] = cards
    summary.count("models", len(cards))
    finish(ctx, summary, out, json_out)


@app.command("train-stars")
def train_stars_command(
    ctx: typer.Context,
    out: OutOption,
    seeds: Annotated[str, typer.Option(help="Simulation seeds to train on, FIRST-LAST.")
                     ] = "11000-11399",
    validation_seeds: Annotated[str, typer.Option(help="Seeds for validation.")
                                ] = "11900-11911",
    size: Annotated[str, typer.Option(help="Simulated image size, WxH.")] = "384x384",
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 6000,
    width: Annotated[int, typer.Option(help="Channels of the first U-Net level.")] = 16,
    depth: Annotated[int, typer.Option(help="Poolings of the U-Net.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and batches.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    json_out: JsonOption = False,
) -> None:
    """Train the star-region network (it decides on stars and galaxies) on crowded
    simulated exposures with most hits aimed at stars; write crmask_starnet.pt and its
    model card into OUT."""
    from skytriage.crmask.train import train_star_net_and_save

    summary = RunSummary("crmask train-stars", [], {"seeds": seeds, "size": size,
                                                    "steps": steps})
    with summary.timed("train_s"):
        card = train_star_net_and_save(out / "crmask_starnet.pt", parse_seeds(seeds),
                                       parse_seeds(validation_seeds), _shape(size),
                                       steps=steps, width=width, depth=depth, seed=seed,
                                       command=" ".join(summary.argv), lr=lr,
                                       progress=show_progress())
    summary.extra["cards"] = {"crmask_starnet.pt": card}
    summary.count("models")
    finish(ctx, summary, out, json_out)


def simulate_crmask_command(
    ctx: typer.Context,
    out: OutOption,
    seed: Annotated[int, typer.Option(help="Seed of the first image; image i uses seed+i.")
                    ] = 0,
    images: Annotated[int, typer.Option(min=1, help="Number of exposures.")] = 4,
    size: Annotated[str, typer.Option(help="Image size WxH (px).")] = "512x512",
    psf: Annotated[str | None, typer.Option(help="gaussian or moffat (default: mixed).")
                   ] = None,
    fwhm: Annotated[str | None, typer.Option(help="FWHM range LOW,HIGH in px (default: "
                                                  "half 1.2-2, half 2-5).")] = None,
    beta: Annotated[str, typer.Option(help="Moffat beta range LOW,HIGH.")] = "2.5,4.5",
    density: Annotated[str, typer.Option(help="Cosmic-ray pixel fraction LOW,HIGH.")
                       ] = "0.001,0.1",
    dtype: Annotated[str, typer.Option(help="float32, or uint16 (BZERO, 100 ADU bias).")
                     ] = "float32",
    json_out: JsonOption = False,
) -> None:
    """Write exposures with cosmic rays (tracks, worms, spots; hits on star cores), stars,
    galaxies and saturation, with the truth under truth/."""
    from skytriage.crmask.simulate import draw_plan, simulate_exposure, write_exposure

    if psf not in (None, "gaussian", "moffat"):
        fail_usage(f"--psf must be gaussian or moffat, not {psf!r}")
    if dtype not in ("float32", "uint16"):
        fail_usage(f"--dtype must be float32 or uint16, not {dtype!r}")
    options = {"psf_kind": psf, "fwhm_range": _range(fwhm, "fwhm") if fwhm else None,
               "beta_range": _range(beta, "beta"), "density_range": _range(density, "density")}
    summary = RunSummary("simulate crmask", [], {"seed": seed, "images": images, "size": size,
                                                 **{k: v for k, v in options.items()}})
    shape = _shape(size)
    for i in range(images):
        rng = np.random.default_rng(seed + i)
        exposure = simulate_exposure(draw_plan(rng, shape, **options), rng)
        summary.output(write_exposure(exposure, out, f"crmask_{seed + i:05d}", dtype=dtype))
        summary.count("images")
    finish(ctx, summary, out, json_out)


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    images: Annotated[list[Path], typer.Argument(
        help="Exposures written by 'skytriage simulate crmask' (or their folder).")],
    out: OutOption,
    methods: Annotated[str, typer.Option(help="Comma-separated: skytriage-unet, "
                                              "skytriage-unet-raw, skytriage-unet-starnet, "
                                              "skytriage-unet-starnet-floor, "
                                              "skytriage-unet-stars, "
                                              "skytriage-unet-starmodel, "
                                              "skytriage-lacosmic, "
                                              "astroscrappy, deepcr-acs-wfc, "
                                              "deepcr-decam, cosmic-conn-ground, "
                                              "cosmic-conn-hst.")
                       ] = "skytriage-unet,skytriage-lacosmic,astroscrappy",
    figures: Annotated[Path | None, typer.Option(
        help="Also save each plot as crmask_<name>.png in this folder.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Measure masks against the simulator's truth (the CSST method): F1, recall within star
    regions, false star cores, photometry, contamination, detection rate at fixed
    false-positive rates; write metrics.csv, photometry.csv, table.csv and report.html."""
    from skytriage.crmask.evaluate import evaluate_images
    from skytriage.crmask.peers import MASKERS
    from skytriage.crmask.report import write_report
    from skytriage.io import write_csv

    names = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in MASKERS]
    if unknown:
        fail_usage(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(MASKERS)}")
    paths = []
    for item in images:
        paths += sorted(item.glob("*.fits")) if item.is_dir() else [item]
    if not paths:
        fail_usage("no exposures to evaluate")
    summary = RunSummary("crmask evaluate", images, {"methods": names})
    with summary.timed("evaluate_s"):
        evaluation = evaluate_images(paths, names, progress=show_progress())
    out.mkdir(parents=True, exist_ok=True)
    table = evaluation.table()
    for name, frame in (("metrics.csv", evaluation.rows), ("photometry.csv",
                        evaluation.photometry), ("table.csv", table)):
        summary.output(write_csv(out / name, frame))
    summary.output(write_report(evaluation, out, figures))
    summary.extra["table"] = table.to_dict(orient="records")
    summary.count("images", len(paths))
    finish(ctx, summary, out, json_out)


@app.command("make-training")
def make_training_command(
    ctx: typer.Context,
    exposures: Annotated[list[Path], typer.Argument(
        help="At least 3 exposures of one field (ADU).")],
    out: OutOption,
    gain: Annotated[float | None, typer.Option(help="e-/ADU (default: header).")] = None,
    readnoise: Annotated[float | None, typer.Option(help="e- (default: header).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Align repeated exposures, median-combine them and label each one's cosmic rays
    against the median; write them in the layout of 'simulate crmask' (for training)."""
    from skytriage.crmask.labels import label_exposures, write_training

    summary = RunSummary("crmask make-training", exposures, {"gain": gain,
                                                             "readnoise": readnoise})
    try:
        labelled = label_exposures(exposures, gain=gain, readnoise=readnoise)
    except SkytriageInputError as err:
        fail_usage(str(err))
    for path in write_training(labelled, out):
        summary.output(path)
    summary.extra["shifts"] = {item.path: item.shift for item in labelled}
    summary.count("exposures", len(labelled))
    summary.count("cosmic_ray_pixels", sum(int((i.mask & 1).sum()) for i in labelled))
    finish(ctx, summary, out, json_out)
