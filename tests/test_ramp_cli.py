"""`skytriage simulate ramp`, `skytriage ramp RAMP --out DIR`, `ramp evaluate`: files,
contracts, scores and reruns, through the real command line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from skytriage.cli import app


def cli(*args):
    """Run the command in-process (one import for the whole module)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout,
                           stderr=result.stderr)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("ramps")
    config = root / "small.yaml"
    config.write_text("shape: [96, 96]\nn_groups: 30\ncr_rate: 300\nrtn_fraction: 0.01\n"
                      "rtn_dwell: [5, 15]\nsnowball_radius: [4, 6]\nn_stars: 5\n")
    done = cli("simulate", "ramp", "--out", root / "sim", "--seed", 21, "--count", 2,
               "--config", config)
    assert done.returncode == 0, done.stderr
    return root


def test_simulate_writes_ramps_truth_and_config(simulated):
    sim = simulated / "sim"
    for name in ("ramp_0021.fits", "ramp_0021_truth.fits", "ramp_0021_events.ecsv",
                 "ramp_0022.fits", "config.yaml", "summary.json"):
        assert (sim / name).exists(), name
    with fits.open(sim / "ramp_0021.fits") as hdul:
        assert hdul[0].data.shape == (30, 96, 96) and hdul[0].data.dtype == np.uint16
        assert hdul[0].header["GAIN"] == 2.0 and hdul[0].header["RDNOISE"] == 12.0


def test_run_writes_the_contract_and_evaluate_scores_it(simulated):
    sim, out = simulated / "sim", simulated / "out"
    done = cli("ramp", sim / "ramp_0021.fits", sim / "ramp_0022.fits", "--out", out)
    assert done.returncode == 0, done.stderr
    for stem in ("ramp_0021", "ramp_0022"):
        with fits.open(out / stem / "mask.fits") as hdul:
            mask = hdul[0].data
        assert mask.dtype == np.uint16 and mask.shape == (96, 96)
        # a snowball's pixels never carry bit 1; a telegraph pixel under a halo carries 2 and 4
        assert set(np.unique(mask & ~np.uint16(32))) <= {0, 1, 2, 4, 6}
        detections = json.loads((out / stem / "detections.json").read_text())["detections"]
        kinds = {d["type"] for d in detections}
        assert kinds == {"cr", "rtn", "snowball"}
        for d in detections:
            assert {"type", "x", "y", "first_group", "mean_intensity", "max_intensity",
                    "extent"} <= d.keys()
        assert (out / stem / "slope.fits").exists()
        assert "data:image/png;base64" in (out / stem / "report.html").read_text()
    scored = cli("ramp", "evaluate", out / "ramp_0021", out / "ramp_0022", "--out",
                 simulated / "eval")
    assert scored.returncode == 0, scored.stderr
    scores = json.loads((simulated / "eval" / "summary.json").read_text())["scores"]
    assert scores["cr"]["event_recall"] >= 0.95 and scores["cr"]["pixel_precision"] >= 0.95
    assert scores["snowball"]["event_recall"] == 1.0
    assert (simulated / "eval" / "scores.csv").exists()


def test_rerun_skips_finished_inputs(simulated):
    sim, out = simulated / "sim", simulated / "rerun"
    first = cli("ramp", sim / "ramp_0021.fits", "--out", out, "--json")
    again = cli("ramp", sim / "ramp_0021.fits", "--out", out, "--json")
    assert first.returncode == again.returncode == 0
    assert json.loads(again.stdout[again.stdout.index("{"):])["counts"] == {"skipped": 1}
