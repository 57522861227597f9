"""The command line: commands listed, exit codes, summary.json, bad inputs, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

SKYTRIAGE = [sys.executable, "-m", "skytriage"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a fresh process."""
    return subprocess.run([*SKYTRIAGE, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_help_lists_every_task():
    result = cli("--help")
    assert result.returncode == 0
    for name in ("simulate", "preview", "crmask", "ramp", "transients", "events", "dashboard"):
        assert name in result.stdout


def test_version():
    from skytriage import __version__

    result = cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_bad_usage_exits_2(tmp_path):
    assert cli("preview", str(tmp_path)).returncode == 2  # no --out
    assert cli("simulate", "frames", "--out", tmp_path, "--size", "banana").returncode == 2
    assert cli("crmask", "--out", tmp_path).returncode == 2  # no image


def test_simulate_then_preview_writes_the_contract(tmp_path):
    night, out = tmp_path / "night", tmp_path / "out"
    sim = cli("simulate", "frames", "--out", night, "--datasets", "2", "--frames", "8",
              "--size", "200x160", "--seed", "5")
    assert sim.returncode == 0, sim.stderr
    truth = pd.read_csv(night / "truth.csv")
    assert len(truth) == 16

    result = cli("--json", "preview", night, "--out", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["counts"]["done"] == 16 and summary["failed"] == []
    frames = pd.read_parquet(out / "frames.parquet")
    assert list(frames.columns[:7]) == ["path", "dataset", "frame", "anomaly_score",
                                        "is_anomaly", "label", "labels"]
    assert sorted(frames["dataset"].unique()) == sorted(truth["dataset"].unique())
    assert set(frames["label"]) <= {"normal", "satellite", "slew", "tracking", "cloud",
                                    "obstruction", "defocus", "background", "camera"}
    first = frames[frames["dataset"] == frames["dataset"].iloc[0]]
    assert list(first["frame"]) == list(range(8))
    assert (out / "report.html").stat().st_size > 10_000
    assert pd.read_csv(out / "frames.csv").shape == frames.shape


def test_one_bad_file_does_not_stop_the_batch(tmp_path, small_night):
    root, truth = small_night
    good = [root / p for p in truth["path"][:5]]
    bad = tmp_path / "cut.fits"
    bad.write_bytes(good[0].read_bytes()[:5000])
    out = tmp_path / "out"
    result = cli("preview", *good, bad, "--out", out, "--workers", "1")
    assert result.returncode == 1
    summary = json.loads((out / "summary.json").read_text())
    assert [f["path"] for f in summary["failed"]] == [str(bad)]
    assert summary["failed"][0]["error"]
    assert "cut.fits" in result.stderr
    assert len(pd.read_parquet(out / "frames.parquet")) == 5


def test_no_usable_input_exits_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("preview", empty, "--out", tmp_path / "out")
    assert result.returncode == 2
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["failed"][0]["path"] == str(empty)


def test_rerun_measures_only_changed_frames(tmp_path, small_night):
    root, truth = small_night
    frames = [tmp_path / f"f{i}.fits" for i in range(4)]
    for src, dst in zip(truth["path"][:4], frames, strict=True):
        dst.write_bytes((root / src).read_bytes())
    out = tmp_path / "out"
    cache = out / ".cache" / "features.jsonl"
    assert cli("preview", *frames, "--out", out, "--workers", "1").returncode == 0
    assert len(cache.read_text().splitlines()) == 4
    assert cli("preview", *frames, "--out", out, "--workers", "1").returncode == 0
    assert len(cache.read_text().splitlines()) == 4
    os.utime(frames[2], ns=(1, 1))
    assert cli("preview", *frames, "--out", out, "--workers", "1").returncode == 0
    assert len(cache.read_text().splitlines()) == 5
    assert len(pd.read_parquet(out / "frames.parquet")) == 4


def test_train_then_run_then_evaluate(tmp_path, small_night):
    """The whole preview loop through the CLI: train a small model, use it, judge it."""
    model_dir = tmp_path / "model"
    result = cli("--json", "preview", "train", "--out", model_dir, "--seeds", "11-12",
                 "--validation-seeds", "13", "--datasets", "2", "--frames", "16",
                 "--sizes", "192x192", "--workers", "1")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["counts"]["done"] == 64
    card = json.loads((model_dir / "preview_classifier.json").read_text())
    assert card["training"]["simulated"]["seeds"] == [11, 12]
    assert 0 <= card["validation"]["any_f1"] <= 1 and card["features"]

    root, truth = small_night
    out = tmp_path / "out"
    run = cli("preview", root, "--out", out, "--model", model_dir / "preview_classifier.joblib",
              "--truth", root / "truth.csv", "--workers", "1")
    assert run.returncode == 0, run.stderr
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["summary"]["frames"] == len(truth)
    detectors = {row["detector"] for row in evaluation["detectors"]}
    assert {"classifier", "dbscan (per dataset)", "isolation forest (per dataset)"} <= detectors
    assert "Evaluation against truth" in (out / "report.html").read_text()

    again = cli("preview", "evaluate", out, "--truth", root / "truth.csv", "--out",
                tmp_path / "eval")
    assert again.returncode == 0, again.stderr
    assert "Welch t-tests" in (tmp_path / "eval" / "evaluation.md").read_text()
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text())["summary"] == \
        evaluation["summary"]


def test_hand_labels_train_a_model(tmp_path, small_night):
    root, truth = small_night
    out = tmp_path / "out"
    assert cli("preview", root, "--out", out, "--workers", "1").returncode == 0
    frames = pd.read_parquet(out / "frames.parquet")
    labels = frames[["path", "frame"]].assign(
        label=truth.set_index(["dataset", "frame"]).loc[
            list(zip(frames["dataset"], frames["frame"], strict=True)), "label"].to_numpy())
    labels.to_csv(tmp_path / "labels.csv", index=False)
    model_dir = tmp_path / "hand"
    result = cli("preview", "train", "--out", model_dir, "--labels", tmp_path / "labels.csv",
                 "--result", out, "--no-simulated")
    assert result.returncode == 0, result.stderr
    card = json.loads((model_dir / "preview_classifier.json").read_text())
    assert card["training"]["hand_labelled_frames"] == len(frames)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.fits,alien\n")
    refused = cli("preview", "train", "--out", tmp_path / "x", "--labels", bad, "--result", out,
                  "--no-simulated")
    assert refused.returncode == 2 and "alien" in refused.stderr
