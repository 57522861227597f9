"""Rule-based ramp detectors against simulated truth (IPC, common-mode and row noise, 3 %
non-linearity are on in every simulated ramp)."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.ramp import RampSimConfig, run, score, simulate_ramp
from skytriage.ramp.detect import CR, RTN, SNOWBALL, RuleSettings
from skytriage.ramp.simulate import truth_of

BUSY = dict(shape=(128, 128), n_groups=60, cr_rate=300.0, rtn_fraction=0.01,
            rtn_dwell=(6.0, 20.0), snowball_min=1, snowball_radius=(4.0, 7.0), n_stars=8)


def detect(sim, **kwargs):
    h = sim.header
    return run(sim.data, gain=h["GAIN"], read_noise=h["RDNOISE"], saturation=h["SATURATE"],
               **kwargs)


@pytest.fixture(scope="module", params=[1.0, 10.0], ids=["sky1", "sky10"])
def busy(request):
    sky = request.param
    sim = simulate_ramp(RampSimConfig.from_dict({**BUSY, "sky": [sky, sky]}), 11)
    return sim, detect(sim)


def test_cosmic_rays_found_with_precise_pixels(busy):
    sim, result = busy
    cr = score(result.mask, truth_of(sim))["cr"]
    assert cr["truth_events"] > 200
    assert cr["event_recall"] >= 0.97
    assert cr["pixel_precision"] >= 0.97


def test_telegraph_pixels_classified(busy):
    sim, result = busy
    rtn = score(result.mask, truth_of(sim))["rtn"]
    assert rtn["truth_pixels"] > 20
    assert rtn["pixel_recall"] >= 0.8 and rtn["pixel_precision"] >= 0.9
    fits = [d for d in result.detections if d["type"] == "rtn"]
    amplitudes = {(int(d["y"]), int(d["x"])): d["amplitude"] for d in fits}
    events = sim.events[sim.events["kind"] == "rtn"]
    measured = [(amplitudes[(int(e.y), int(e.x))], e.electrons) for e in events.itertuples()
                if (int(e.y), int(e.x)) in amplitudes]
    ratio = np.array([m / true for m, true in measured])
    assert np.median(ratio) == pytest.approx(1.0, abs=0.15)


def test_snowball_is_one_event_of_its_own_class(busy):
    sim, result = busy
    snow = score(result.mask, truth_of(sim))["snowball"]
    assert snow["event_recall"] == 1.0 and snow["pixel_precision"] >= 0.8
    flagged = result.mask & SNOWBALL > 0
    assert not (result.mask[flagged] & CR).any()
    assert sum(d["type"] == "snowball" for d in result.detections) == 1


def test_bright_stars_alone_raise_no_events():
    """The per-pixel noise model: bright, non-linear, IPC-coupled stars are not jumps."""
    config = RampSimConfig(shape=(96, 96), n_groups=40, n_stars=30, star_flux=(200., 3000.),
                           cr_rate=0.0, rtn_fraction=0.0, snowball_min=0, snowball_rate=0.0,
                           sky=(10.0, 10.0))
    sim = simulate_ramp(config, 4)
    result = detect(sim)
    assert result.detections == []
    assert not (result.mask & (CR | RTN | SNOWBALL)).any()


def test_slope_ignores_the_jumps(busy):
    sim, result = busy
    quiet = sim.truth_mask == 0
    quiet[:8], quiet[-8:], quiet[:, :8], quiet[:, -8:] = False, False, False, False
    sky = np.median(result.slope[quiet])
    assert sky * sim.header["GAIN"] == pytest.approx(sim.header["SKYFLUX"], abs=0.3)
    hit = (sim.truth_mask & CR > 0) & (result.mask & CR > 0) & (sim.truth_mask & 32 == 0)
    spread = np.std(result.slope[quiet])
    assert abs(np.median(result.slope[hit]) - sky) < 0.5 * spread


def test_bands_give_the_same_answer_as_one_block(busy):
    sim, result = busy
    banded = detect(sim, band_mb=2.0)
    assert banded.info["rows_per_band"] < 128
    np.testing.assert_array_equal(banded.mask, result.mask)
    np.testing.assert_allclose(banded.slope, result.slope, equal_nan=True)


def test_short_ramp_telegraph_visits_and_halo_pixels():
    """20 groups: visits of a few reads, and telegraph pixels under a snowball's halo."""
    config = RampSimConfig.from_dict(dict(
        shape=(192, 192), n_groups=20, rtn_fraction=0.04, rtn_dwell=[8.0, 30.0],
        snowball_min=1, snowball_radius=[20.0, 25.0], n_stars=8, sky=[10.0, 10.0]))
    sim = simulate_ramp(config, 12)
    result = detect(sim)
    rtn = score(result.mask, truth_of(sim))["rtn"]
    assert rtn["truth_pixels"] > 300
    assert rtn["pixel_recall"] >= 0.78 and rtn["pixel_precision"] >= 0.95
    halo = (sim.truth_mask & RTN > 0) & (sim.truth_mask & SNOWBALL > 0)
    assert halo.sum() >= 10
    assert np.mean(result.mask[halo] & RTN > 0) >= 0.5


def test_faint_cosmic_rays_found_by_their_level_change():
    """150-400 e- cosmic rays at sky 10 e-/group: many are under 5 sigma in their one
    difference; the windowed level change of the pixel finds them at the same precision."""
    config = RampSimConfig.from_dict(dict(
        shape=(128, 128), n_groups=60, cr_rate=400.0, cr_energy=[150.0, 400.0],
        rtn_fraction=0.0, snowball_min=0, snowball_rate=0.0, n_stars=4, sky=[10.0, 10.0]))
    sim = simulate_ramp(config, 13)
    with_level = score(detect(sim).mask, truth_of(sim))["cr"]
    without = score(detect(sim, settings=RuleSettings(level_sigma=np.inf)).mask,
                    truth_of(sim))["cr"]
    assert with_level["truth_events"] > 300
    assert with_level["event_recall"] >= 0.965 and with_level["pixel_precision"] >= 0.96
    assert with_level["event_recall"] >= without["event_recall"] + 0.02
