"""The shipped ramp network: its card, its file, and what fusing it with the rules does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skytriage.nn import shipped_weights
from skytriage.ramp import RampSimConfig, run, score, simulate_ramp
from skytriage.ramp.model import RampNet, shipped_model
from skytriage.ramp.simulate import truth_of
from skytriage.ramp.train import ramp_patches


def test_shipped_model_is_small_and_documented():
    path = shipped_weights("ramp_net.pt")
    assert path.stat().st_size < 1_000_000
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["command"].startswith("skytriage ramp train")
    assert card["training_data"]["seeds"] == "1000-1007"
    held_out = card["held_out"]["100 groups"]
    assert held_out["fused"]["rtn"]["pixel_recall"] >= held_out["rules"]["rtn"]["pixel_recall"]


def test_save_and_load_give_the_same_predictions(tmp_path):
    net = shipped_model()
    inputs, _ = ramp_patches(RampSimConfig(shape=(96, 96), n_groups=30, rtn_fraction=0.02,
                                           rtn_dwell=(5.0, 15.0)), 3001)
    assert len(inputs) > 5
    copy = RampNet.load(net.save(tmp_path / "net.pt", {"note": "test"}))
    np.testing.assert_allclose(copy.predict_proba(inputs), net.predict_proba(inputs),
                               atol=1e-6)


@pytest.fixture(scope="module")
def telegraph_ramp():
    config = RampSimConfig(shape=(128, 128), n_groups=60, rtn_fraction=0.02,
                           rtn_dwell=(8.0, 30.0), snowball_min=0, snowball_rate=0.0)
    return simulate_ramp(config, 3002)  # a seed never trained on


def test_fusion_adds_telegraph_pixels_without_false_ones(telegraph_ramp):
    sim = telegraph_ramp
    h = sim.header
    rules, fused = (score(run(sim.data, gain=h["GAIN"], read_noise=h["RDNOISE"],
                              saturation=h["SATURATE"], model=m).mask, truth_of(sim))["rtn"]
                    for m in (None, shipped_model()))
    assert rules["truth_pixels"] > 40
    assert fused["pixel_recall"] >= rules["pixel_recall"]
    assert fused["pixel_precision"] >= rules["pixel_precision"] - 0.02
