"""The ramp simulator: determinism, photon and read noise, events, saturation, YAML config."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.errors import SkytriageInputError
from skytriage.ramp.simulate import (
    CR,
    RTN,
    SATURATED,
    SNOWBALL,
    RampSimConfig,
    read_truth,
    simulate_ramp,
    write_simulated,
)

QUIET = dict(shape=(72, 72), n_groups=30, n_stars=0, cr_rate=0.0, rtn_fraction=0.0,
             snowball_rate=0.0, snowball_min=0, row_noise=0.0, drift=0.0, ipc_alpha=0.0,
             nonlinearity=0.0)


def test_same_seed_same_ramp_other_seed_other_ramp():
    config = RampSimConfig(shape=(48, 48), n_groups=8)
    a, b, c = simulate_ramp(config, 3), simulate_ramp(config, 3), simulate_ramp(config, 4)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.truth_mask, b.truth_mask)
    assert not np.array_equal(a.data, c.data)
    assert a.data.dtype == np.uint16 and a.data.shape == (1, 8, 48, 48)


@pytest.mark.parametrize("sky", [1.0, 10.0])
def test_differences_carry_poisson_plus_read_noise(sky):
    """Variance of group differences = 2 read_noise^2 + sky (e-), the photon transfer."""
    config = RampSimConfig.from_dict({**QUIET, "sky": [sky, sky], "n_groups": 60})
    sim = simulate_ramp(config, 1)
    electrons = sim.data[0, :, 8:-8, 8:-8].astype(np.float64) * config.gain
    diffs = np.diff(electrons, axis=0)
    assert diffs.mean() == pytest.approx(sky + config.dark_current * config.frame_time,
                                         abs=0.15)
    expected = 2 * config.read_noise**2 + sky + 2 * config.gain**2 / 12  # + rounding
    assert diffs.var() == pytest.approx(expected, rel=0.03)


def test_events_leave_steps_where_the_truth_says():
    config = RampSimConfig(shape=(96, 96), n_groups=30, cr_rate=300.0, rtn_fraction=0.0,
                           snowball_min=0, snowball_rate=0.0, n_stars=0)
    sim = simulate_ramp(config, 5)
    electrons = sim.data[0].astype(np.float64) * config.gain
    diffs = np.diff(electrons, axis=0)
    crs = sim.events[(sim.events["kind"] == "cr") & sim.events["visible"]]
    assert len(crs) > 50
    steps = []
    for index, event in crs.iterrows():
        pixels = sim.event_ids == index
        if not pixels.any():
            continue
        at = diffs[event["group"] - 1][pixels].sum()
        before = np.median(diffs[:, pixels].sum(axis=1))
        steps.append((at - before) / event["electrons"])
    # the step holds the deposit above the truth threshold: most of the charge, never more
    assert np.median(steps) == pytest.approx(0.93, abs=0.08)
    assert (sim.truth_mask & CR > 0).sum() >= len(crs)


def test_telegraph_pixels_toggle_and_snowballs_saturate():
    config = RampSimConfig(shape=(96, 96), n_groups=60, rtn_fraction=0.01,
                           rtn_dwell=(5.0, 15.0), snowball_min=1, snowball_radius=(4.0, 6.0),
                           n_stars=0, cr_rate=0.0)
    sim = simulate_ramp(config, 2)
    rtn = sim.events[sim.events["kind"] == "rtn"]
    assert (rtn["n_transitions"] >= 2).sum() == (sim.truth_mask & RTN > 0).sum() > 10
    snow = sim.events[sim.events["kind"] == "snowball"].iloc[0]
    core = (sim.truth_mask & SNOWBALL > 0) & (sim.truth_mask & SATURATED > 0)
    assert core.sum() >= 0.8 * np.pi * snow["radius"] ** 2
    assert sim.data.max() == config.saturation


def test_yaml_config_and_unknown_keys(tmp_path):
    good = tmp_path / "ramp.yaml"
    good.write_text("shape: [64, 80]\nn_groups: 12\nsky: [2, 3]\n")
    config = RampSimConfig.from_yaml(good)
    assert config.shape == (64, 80) and config.n_groups == 12 and config.sky == (2, 3)
    bad = tmp_path / "bad.yaml"
    bad.write_text("shape: [64, 64]\ncosmic_rays: 5\n")
    with pytest.raises(SkytriageInputError, match="bad.yaml.*unknown option.*cosmic_rays"):
        RampSimConfig.from_yaml(bad)


def test_written_truth_reads_back(tmp_path):
    sim = simulate_ramp(RampSimConfig(shape=(48, 48), n_groups=6), 1)
    paths = write_simulated(sim, tmp_path, "r")
    truth = read_truth(paths["ramp"])
    np.testing.assert_array_equal(truth.mask, sim.truth_mask)
    np.testing.assert_array_equal(truth.event_ids, sim.event_ids)
    assert list(truth.events["kind"]) == list(sim.events["kind"])


def test_visit_snr_is_what_no_line_and_step_explain():
    """A visit's SNR is the residual of its box after the best line + one step fit (by
    brute force here), below the known-slope bound A sqrt(L (N - L) / N) / read noise;
    a pixel that toggles once has no visit (0)."""
    from skytriage.ramp.simulate import _Telegraph

    states = np.zeros((20, 3), bool)
    states[6:10, 0] = True  # one visit of 4 reads
    states[2:4, 1] = states[8:17, 1] = True  # visits of 2, 9 (and lows of 4 between)
    states[12:, 2] = True  # one toggle only
    telegraph = _Telegraph(np.arange(3), np.array([60.0, 30.0, 200.0]), states, (1, 3))
    snr = telegraph.visit_snr(20, 12.0)

    j = np.arange(20.0)

    def unexplained(box):
        left = []
        for step in range(1, 20):
            design = np.stack([np.ones(20), j, j >= step], axis=1)
            fit = np.linalg.lstsq(design, box, rcond=None)[0]
            left.append(np.linalg.norm(box - design @ fit))
        return min(left)

    box0 = ((j >= 6) & (j < 10)).astype(float)
    assert snr[0] == pytest.approx(60 * unexplained(box0) / 12, rel=1e-6)
    assert snr[0] < 60 * np.sqrt(4 * 16 / 20) / 12
    visits1 = [((j >= a) & (j < b)).astype(float) for a, b in ((2, 4), (4, 8), (8, 17))]
    assert snr[1] == pytest.approx(30 * max(unexplained(v) for v in visits1) / 12, rel=1e-6)
    assert snr[2] == 0


def test_telegraph_changes_while_saturated_are_not_counted():
    """A pixel that toggles down, saturates (a snowball core) and toggles back up while
    saturated shows one change: it is not a visible telegraph pixel and has no visit."""
    from skytriage.ramp.simulate import _Telegraph

    states = np.ones((20, 2), bool)
    states[5:9] = False  # a low visit at reads 5-8 in both pixels
    telegraph = _Telegraph(np.arange(2), np.array([120.0, 120.0]), states, (1, 2))
    telegraph.readable[7:, 0] = False  # pixel 0 saturates at read 7
    np.testing.assert_array_equal(telegraph.transitions(), [1, 2])
    snr = telegraph.visit_snr(20, 12.0)
    assert snr[0] == 0 and snr[1] > 5


def test_simulated_truth_counts_only_readable_telegraph_changes():
    """In a simulated ramp with snowball cores over telegraph pixels, a telegraph pixel is
    visible when it changes twice between unsaturated reads, ambiguous when once."""
    import skytriage.ramp.simulate as simulate

    captured = {}
    original = simulate._telegraph

    def keep(config, rng):
        captured["rtn"] = original(config, rng)
        return captured["rtn"]

    simulate._telegraph = keep
    try:
        sim = simulate.simulate_ramp(RampSimConfig(shape=(256, 256), n_groups=20,
                                                   rtn_fraction=0.05, snowball_rate=60.0), 5)
    finally:
        simulate._telegraph = original
    rtn = captured["rtn"]
    raw = np.count_nonzero(np.diff(rtn.states, axis=0), axis=0)
    shown = rtn.transitions()
    assert (shown < raw).any()  # some changes happen while the pixel is saturated
    ys, xs = np.divmod(rtn.index, 256)
    np.testing.assert_array_equal(sim.truth_mask[ys, xs] & 2 > 0, shown >= 2)
    np.testing.assert_array_equal(sim.ambiguous[ys, xs], shown == 1)
