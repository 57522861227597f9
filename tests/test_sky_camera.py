"""Camera models: photon transfer, read noise, saturation, H2RG ramps, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.sky import CCD, H2RG, SCMOS

SHAPE = (256, 256)


def _ptc_gain(camera, level: float, rng) -> float:
    """Gain (e-/ADU) from a flat pair and a bias pair (photon-transfer method)."""
    flat = np.full(SHAPE, level, np.float32)
    zero = np.zeros(SHAPE, np.float32)
    f1, f2 = (camera.expose(flat, rng, 1.0).astype(np.float64) for _ in range(2))
    b1, b2 = (camera.expose(zero, rng, 1.0).astype(np.float64) for _ in range(2))
    signal = f1.mean() + f2.mean() - b1.mean() - b2.mean()
    return signal / (np.var(f1 - f2) - np.var(b1 - b2))


def _read_noise(camera, rng) -> float:
    """Read noise (e-) of ordinary pixels from a bias pair, row and column pattern removed.

    Noisy and hot pixels (the camera's fixed pattern) are left out, and the variance of
    rounding to integer ADU (1/12 ADU^2 per frame) is taken off.
    """
    zero = np.zeros(SHAPE, np.float32)
    diff = camera.expose(zero, rng, 0.0).astype(np.float64) - camera.expose(
        zero, rng, 0.0).astype(np.float64)
    diff -= np.median(diff, axis=1, keepdims=True)
    diff -= np.median(diff, axis=0, keepdims=True)
    pattern = camera.pattern(SHAPE)
    ordinary = np.ones(diff.size, bool)
    ordinary[pattern.noisy_index] = ordinary[pattern.hot_index] = False
    return camera.gain * np.sqrt((diff.ravel()[ordinary].var() - 2 / 12) / 2)


@pytest.mark.parametrize("gain,read_noise", [(0.8, 1.6), (0.3, 1.2), (2.0, 3.0)])
def test_scmos_photon_transfer_gain_and_read_noise(gain, read_noise):
    camera = SCMOS(gain=gain, read_noise=read_noise, seed=2)
    rng = np.random.default_rng(0)
    level = 0.4 * camera.full_well * min(1.0, 60000 * gain / camera.full_well)
    assert _ptc_gain(camera, level, rng) == pytest.approx(gain, rel=0.05)
    assert _read_noise(camera, rng) == pytest.approx(read_noise, rel=0.05)


def test_ccd_photon_transfer_and_overscan():
    camera = CCD(gain=1.5, read_noise=5.0, overscan=16)
    rng = np.random.default_rng(1)
    frame = camera.expose(np.full(SHAPE, 1e4, np.float32), rng, 1.0)
    assert frame.shape == (SHAPE[0], SHAPE[1] + 16) and frame.dtype == np.uint16
    overscan = frame[:, -16:].astype(np.float64)
    assert overscan.mean() == pytest.approx(camera.bias, abs=0.2)
    assert overscan.std() * camera.gain == pytest.approx(5.0, rel=0.05)
    flat = np.full(SHAPE, 1e4, np.float32)
    f1, f2 = (camera.expose(flat, rng, 1.0)[:, :-16].astype(np.float64) for _ in range(2))
    gain = (f1.mean() + f2.mean() - 2 * overscan.mean()) / (
        np.var(f1 - f2) - 2 * overscan.var())
    assert gain == pytest.approx(1.5, rel=0.05)


@pytest.mark.parametrize("camera", [SCMOS(gain=0.8, full_well=30000.0),  # full well limits
                                    SCMOS(gain=3.0, full_well=300000.0),  # the ADC limits
                                    CCD(gain=1.0, full_well=50000.0)])
def test_saturation_clips_at_the_configured_level(camera):
    rng = np.random.default_rng(2)
    signal = np.full((64, 64), 1e7, np.float32)
    signal[:, :32] = 10.0
    frame = camera.expose(signal, rng, 1.0)
    expected = min(65535, round(camera.bias + camera.full_well / camera.gain))
    assert camera.saturation == expected
    assert np.all(frame[:, 32:] == expected)
    assert frame[:, :32].max() < expected


def test_scmos_fixed_pattern_has_hot_and_noisy_pixels():
    camera = SCMOS(hot_fraction=1e-3, noisy_fraction=0.02, seed=5)
    pattern = camera.pattern(SHAPE)
    assert pattern.hot_index.size == pytest.approx(1e-3 * SHAPE[0] * SHAPE[1], rel=0.3)
    rng = np.random.default_rng(3)
    dark = camera.expose(np.zeros(SHAPE, np.float32), rng, 100.0).astype(np.float64).ravel()
    assert np.median(dark[pattern.hot_index]) > camera.bias + 20
    noisy_sigma = np.sqrt(pattern.noisy_extra**2 + camera.read_noise**2)
    assert noisy_sigma.min() >= 1.5 * camera.read_noise
    assert noisy_sigma.max() > 6 * camera.read_noise  # the long tail


def test_exposures_are_deterministic_per_seed():
    camera = SCMOS()
    signal = np.full(SHAPE, 300.0, np.float32)
    a = camera.expose(signal, np.random.default_rng(7), 5.0)
    b = camera.expose(signal, np.random.default_rng(7), 5.0)
    c = camera.expose(signal, np.random.default_rng(8), 5.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_h2rg_ramp_slope_reference_pixels_and_monotonic_charge():
    detector = H2RG(gain=2.0, read_noise=12.0, drift=2.0)
    rng = np.random.default_rng(4)
    flux = np.full((64, 64), 100.0)  # e-/s
    charge = detector.accumulate(flux, 10, 10.0, rng)
    assert np.all(np.diff(charge, axis=0) >= 0)
    ramp = detector.read(charge, rng).astype(np.float64)
    assert ramp.shape == (10, 64, 64) and detector.ramp(flux, 3, 1.0, rng).dtype == np.uint16
    border = detector.science_mask((64, 64)) == 0
    assert border.sum() == 64 * 64 - 56 * 56
    assert np.all(charge[:, border] == 0)
    # reference pixels follow the drifts, so subtracting their mean per group removes them
    reference = ramp[:, border].mean(axis=1)
    science = ramp[:, ~border].mean(axis=1) - reference
    slope = np.polyfit(np.arange(10), science, 1)[0]
    expected = (100.0 + detector.dark_current) * 10.0 / detector.gain
    assert slope == pytest.approx(expected, rel=0.01)
    assert np.all(np.diff(science) > 0)
    assert abs(reference[-1] - reference[0]) < 0.05 * (science[-1] - science[0])
    # reference pixels carry read noise but no Poisson noise
    ref_cds = (ramp[1] - ramp[0])[border]
    assert ref_cds.std() == pytest.approx(np.sqrt(2) * 12.0 / 2.0, rel=0.1)


def test_h2rg_saturates_at_full_well():
    detector = H2RG(full_well=50000.0)
    charge = detector.accumulate(np.full((16, 16), 1e5), 5, 1.0, np.random.default_rng(5))
    assert charge[-1, 8, 8] == 50000.0
