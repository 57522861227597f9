"""The events commands: simulate, run (contract files, batch with a bad file), evaluate, train."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
from astropy.io import fits
from astropy.table import Table
from typer.testing import CliRunner

from skytriage.cli import app


def cli(*args):
    """Run the command in-process (one import for the whole module)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout,
                           stderr=result.stderr)


def test_simulate_then_run_writes_the_contract(tmp_path):
    sim = tmp_path / "sim"
    assert cli("simulate", "events", "--out", sim, "--seed", "7101", "--frames", "400",
               "--kind", "moonlit").returncode == 0
    with fits.open(sim / "cube.fits") as hdul:
        assert hdul[0].data.shape == (400, 48, 48) and hdul[0].header["TIMEDEL"] == 0.04096
    truth = Table.read(sim / "truth_events.ecsv")
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a fits file")
    out = tmp_path / "out"
    result = cli("events", sim / "cube.fits", bad, "--out", out)
    assert result.returncode == 1, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"][0]["path"] == str(bad)
    assert "not a FITS file" in summary["failed"][0]["error"]
    with fits.open(out / "cube" / "event_map.fits") as hdul:
        assert hdul[0].data.shape == (48, 48)
    events = Table.read(out / "cube" / "events.ecsv")
    assert {"t_start", "t_end", "x", "y", "kind", "direction", "speed", "peak"} <= set(
        events.colnames)
    assert (events["t_start"] <= events["t_end"]).all() and events["t_end"].max() < 400
    assert (out / "cube" / "report.html").stat().st_size > 10_000
    # the truth meteor is reported as a meteor, where and when it was (the rate of false
    # meteors is measured over more frames in test_events_pipeline)
    meteors = events[events["kind"] == "meteor"]
    truth_meteors = truth[truth["kind"] == "meteor"]
    assert len(truth_meteors) >= 1
    for meteor in truth_meteors:
        distance = np.hypot(meteors["x"] - meteor["x"], meteors["y"] - meteor["y"])
        overlap = (meteors["t_start"] <= meteor["t_end"]) & (meteors["t_end"] >= meteor["t_start"])
        assert (overlap & (distance < 6)).any(), (meteor["x"], meteor["y"])


def test_wrong_axis_order_exits_2_with_the_fix(tmp_path):
    path = tmp_path / "yxt.fits"
    fits.PrimaryHDU(np.ones((48, 48, 300), np.float32)).writeto(path)
    result = cli("events", path, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "moveaxis" in result.stderr and "yxt.fits" in result.stderr


def test_train_and_evaluate_on_tiny_sessions(tmp_path):
    model_dir = tmp_path / "model"
    result = cli("events", "train", "--out", model_dir, "--seeds", "7201-7203",
                 "--validation-seeds", "7301", "--frames", "256", "--method", "logistic")
    assert result.returncode == 0, result.stderr
    card = json.loads((model_dir / "events_model.json").read_text())
    assert card["command"].startswith("skytriage events train")
    assert card["validation"]["mean_window_auc"] > 0.9
    result = cli("events", "evaluate", "--out", tmp_path / "eval", "--seeds", "7201-7203",
                 "--frames", "256", "--methods", "logistic,knn_raw", "--pipeline", "logistic")
    assert result.returncode == 0, result.stderr
    assert "knn_raw" in result.stdout and "meteor recall" in result.stdout
    table = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert table["mean_window_auc"]["logistic"] > 0.9
