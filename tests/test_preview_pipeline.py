"""preview.run on whole datasets: bad frames, dataset-relative features, the shipped model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from skytriage.preview import evaluate, rescore, run
from skytriage.preview.model import FrameClassifier, shipped_model_path


def test_bad_frames_are_reported_and_do_not_poison_the_dataset(tmp_path, small_night):
    root, truth = small_night
    dataset = truth["dataset"].iloc[0]
    folder = tmp_path / dataset
    shutil.copytree(root / dataset, folder)
    clean = run([folder], workers=1).frames
    n = len(clean)
    data = fits.getdata(folder / "frame_0000.fits")
    (folder / "frame_0900.fits").write_bytes((folder / "frame_0001.fits").read_bytes()[:9000])
    fits.PrimaryHDU(np.zeros_like(data)).writeto(folder / "frame_0901.fits")
    fits.PrimaryHDU(data[:100, :100]).writeto(folder / "frame_0902.fits")
    fits.PrimaryHDU(np.full_like(data, 65535)).writeto(folder / "frame_0903.fits")

    result = run([folder], workers=1)
    failed = {f["path"].rsplit("/", 1)[-1]: f["error"] for f in result.failed}
    assert set(failed) == {"frame_0900.fits", "frame_0901.fits", "frame_0902.fits"}
    assert "shape" in failed["frame_0902.fits"] and "zero" in failed["frame_0901.fits"]
    assert [f["path"].rsplit("/", 1)[-1] for f in result.flagged] == ["frame_0903.fits"]
    frames = result.frames
    assert len(frames) == n + 1
    saturated = frames[frames["path"].str.endswith("frame_0903.fits")].iloc[0]
    assert saturated["is_anomaly"]
    rel = [c for c in clean.columns if c.startswith("rel_")]
    pd.testing.assert_frame_equal(frames.iloc[:n][rel].reset_index(drop=True),
                                  clean[rel].reset_index(drop=True))


def test_shipped_model_has_a_card_with_training_and_validation():
    card = json.loads(shipped_model_path().with_suffix(".json").read_text())
    assert card["command"].startswith("skytriage preview train")
    assert card["training"]["frames"] >= 2000
    assert card["validation"]["any_f1"] >= 0.9
    assert FrameClassifier.load().features == card["features"]


@pytest.mark.slow
def test_shipped_model_on_unseen_seeds_sizes_and_psf(tmp_path):
    """Seeds, frame size and PSF the model never trained on."""
    from skytriage.preview.simulate import simulate_frames

    truth = simulate_frames(tmp_path, n_datasets=2, frames_per_dataset=40, shape=(640, 896),
                            seed=9101, psf="gaussian", fwhm_range=(2.5, 4.5))
    result = run([tmp_path], workers=2)
    scores = evaluate(result.frames, truth).summary
    assert scores["any_f1"] >= 0.9
    assert scores["macro_f1"] >= 0.75


def test_rescore_rewrites_decisions_without_reading_frames(tmp_path, small_night):
    root, _ = small_night
    night, out = tmp_path / "night", tmp_path / "out"
    shutil.copytree(root, night)
    run([night], workers=1).write(out)
    before = pd.read_parquet(out / "frames.parquet")
    shutil.rmtree(night)  # decisions come from the stored features alone
    result = rescore(out)
    after = pd.read_parquet(out / "frames.parquet")
    pd.testing.assert_frame_equal(before, after)
    assert len(result.frames) == len(before)
    assert (out / "report.html").stat().st_size > 10_000  # thumbnails say "not readable"
