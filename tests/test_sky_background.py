"""Sky level and gradient, vignetting, glow, and drifting cloud screens."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.sky import CloudScreen, glow, sky_background, vignetting


def test_sky_gradient_keeps_the_mean_and_points_the_right_way():
    sky = sky_background((100, 200), 300.0, gradient=0.2, angle=0.0)
    assert sky.dtype == np.float32 and sky.shape == (100, 200)
    assert sky.mean() == pytest.approx(300.0, rel=1e-4)
    assert sky[:, -1].mean() / sky[:, 0].mean() == pytest.approx(1.1 / 0.9, rel=1e-3)
    up = sky_background((100, 200), 300.0, gradient=0.2, angle=90.0)
    assert up[-1].mean() > up[0].mean() and np.ptp(up[:, 50]) > 0


def test_vignetting_is_one_in_the_centre_and_loses_strength_in_the_corner():
    v = vignetting((101, 151), 0.3)
    assert v[50, 75] == pytest.approx(1.0)
    assert v[0, 0] == pytest.approx(0.7, rel=1e-4) and v.min() == pytest.approx(0.7, rel=1e-4)
    assert np.all(vignetting((10, 10), 0.0) == 1)


def test_glow_falls_away_from_the_source():
    g = glow((50, 50), 100.0, -30.0, 25.0, 40.0)
    assert g[25, 0] > g[25, 49]
    assert g[25, 10] == pytest.approx(50.0, rel=1e-4)  # 40 px from the source


def test_cloud_cover_coverage_range_and_determinism():
    screen = CloudScreen(scale=60.0, coverage=0.6, softness=0.2, seed=3)
    cover = screen.cover((256, 256))
    assert cover.dtype == np.float32 and 0 <= cover.min() and cover.max() <= 1
    assert (cover > 0.5).mean() == pytest.approx(0.6, abs=0.15)
    np.testing.assert_array_equal(cover, screen.cover((256, 256)))
    assert not np.array_equal(cover, CloudScreen(60.0, 0.6, 0.2, seed=4).cover((256, 256)))
    t = screen.transmission((256, 256), 0.8)
    assert t.min() >= 0.2 - 1e-6 and t.max() <= 1
    assert screen.emission((256, 256), 50.0).max() <= 50.0 + 1e-4


def test_cloud_screen_drifts_as_a_whole():
    screen = CloudScreen(scale=40.0, coverage=0.5, seed=5)
    still = screen.cover((128, 128))
    moved = screen.cover((128, 128), shift=(16.0, -8.0))
    # the same clouds, 16 px further in x and 8 px back in y (up to interpolation)
    a, b = moved[20:100, 30:110].ravel(), still[28:108, 14:94].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.99
    assert np.abs(a - b).mean() < 0.03
    assert np.corrcoef(a, still[20:100, 30:110].ravel())[0, 1] < 0.5
