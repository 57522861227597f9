"""``skytriage simulate transients`` and ``skytriage transients`` through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from astropy.table import Table

SKYTRIAGE = [str(Path(sys.executable).with_name("skytriage"))]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SKYTRIAGE, *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_simulate_then_find_then_a_bad_pair(tmp_path):
    sim = cli("simulate", "transients", "--out", tmp_path / "sim", "--size", "512", "--seed",
              "41", "--no-wcs")
    assert sim.returncode == 0, sim.stderr
    pair = tmp_path / "sim" / "pair_000"
    truth = Table.read(pair / "truth.ecsv", format="ascii.ecsv")
    assert {"new", "brightening"} <= set(truth["kind"])

    out = tmp_path / "out"
    found = cli("--json", "transients", pair / "ref.fits", pair / "sci.fits", "--out", out,
                "--no-cnn", "--truth", pair / "truth.ecsv")
    assert found.returncode == 0, found.stderr
    summary = json.loads(found.stdout)
    assert summary["evaluation"]["completeness_snr_ge_10"] >= 0.8
    for name in ("transients.ecsv", "diff.fits", "report.html", "summary.json"):
        assert (out / name).exists()

    bad = cli("transients", pair / "ref.fits", tmp_path / "missing.fits", "--out",
              tmp_path / "bad")
    assert bad.returncode == 2
    assert "missing.fits: file not found" in bad.stderr
    failed = json.loads((tmp_path / "bad" / "summary.json").read_text())["failed"]
    assert failed[0]["path"].endswith("missing.fits")
