"""Photon noise: moments, the Gaussian regime, determinism across thread counts."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.sky import noise, poisson


@pytest.mark.parametrize("lam", [0.5, 30.0, 500.0, 5000.0])
def test_poisson_moments(lam):
    counts = poisson(np.full((512, 512), lam, np.float32), np.random.default_rng(0))
    assert counts.dtype == np.float32
    assert np.all(counts == np.rint(counts)) and counts.min() >= 0
    se = np.sqrt(lam / counts.size)
    assert counts.mean() == pytest.approx(lam, abs=5 * se)
    assert counts.var() == pytest.approx(lam, rel=0.02)


def test_gaussian_regime_is_used_only_above_the_threshold():
    lam = np.array([[10.0, 2000.0]] * 50_000, np.float32)
    rng = np.random.default_rng(1)
    exact = noise.poisson_block(lam, rng, gaussian_above=1e9)
    approx = noise.poisson_block(lam, rng, gaussian_above=1000.0)
    for a, b in zip(exact.T, approx.T, strict=True):
        assert a.mean() == pytest.approx(b.mean(), rel=0.01)
        assert a.var() == pytest.approx(b.var(), rel=0.05)


def test_same_result_for_any_number_of_threads(monkeypatch):
    lam = np.full((1500, 700), 40.0, np.float32)  # several row blocks
    assert len(noise.row_blocks(*lam.shape)) > 2
    threaded = poisson(lam, np.random.default_rng(2))
    monkeypatch.setattr(noise.os, "cpu_count", lambda: 1)
    serial = poisson(lam, np.random.default_rng(2))
    np.testing.assert_array_equal(threaded, serial)


def test_poisson_keeps_shape_of_cubes():
    cube = poisson(np.full((3, 20, 30), 5.0), np.random.default_rng(3))
    assert cube.shape == (3, 20, 30)
