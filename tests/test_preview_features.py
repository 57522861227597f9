"""Preview features measure what they claim, against numpy, OpenCV and injected truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skytriage.preview import features
from skytriage.preview.features import FrameView


def sky(ny=300, nx=400, level=1000.0, noise=12.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.normal(level, noise, (ny, nx))), 0, 65535).astype(np.uint16)


def gaussian_stars(shape, n, fwhm, seed=1, flux=3e4, elongation=1.0, angle=0.0):
    """Noise frame with ``n`` Gaussian stars on a grid, true positions returned."""
    ny, nx = shape
    rng = np.random.default_rng(seed)
    image = rng.normal(1000.0, 10.0, shape)
    side = int(np.ceil(np.sqrt(n)))
    ys, xs = np.meshgrid(np.linspace(25, ny - 25, side), np.linspace(25, nx - 25, side),
                         indexing="ij")
    xs, ys = xs.ravel()[:n] + rng.uniform(-0.5, 0.5, n), ys.ravel()[:n] + rng.uniform(-0.5, 0.5, n)
    sigma = fwhm / 2.3548
    yy, xx = np.mgrid[0:ny, 0:nx]
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    for x, y in zip(xs, ys, strict=True):
        dx, dy = xx - x, yy - y
        u, v = dx * c + dy * s, -dx * s + dy * c
        r2 = (u / (sigma * elongation)) ** 2 + (v / sigma) ** 2
        image += flux / (2 * np.pi * sigma**2 * elongation) * np.exp(-r2 / 2)
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16), xs, ys


def test_histogram_statistics_match_numpy_on_noise():
    frame = sky()
    stats = features.histogram_statistics(frame)
    assert stats["median"] == pytest.approx(np.median(frame), abs=0.2)
    assert stats["mean"] == pytest.approx(frame.mean(), rel=1e-9)
    assert stats["std"] == pytest.approx(frame.std(), rel=1e-6)
    assert stats["sigma"] == pytest.approx(12.0, rel=0.03)
    assert stats["p99"] == pytest.approx(np.percentile(frame, 99), abs=0.6)
    assert stats["pct_low"] == pytest.approx(0.135, abs=0.06)  # Gaussian tail below -3σ


def test_opencv_histogram_is_exact_and_falls_back_to_numpy(monkeypatch):
    frame = sky()
    frame[:5, :5] = 65535
    exact = np.bincount(frame.ravel(), minlength=65536)
    np.testing.assert_array_equal(features.level_counts(frame), exact)
    monkeypatch.setattr(features, "_FLOAT32_EXACT", 100)  # as if a bin held > 2**24
    np.testing.assert_array_equal(features.level_counts(frame), exact)


def test_float_frames_are_quantised_with_an_offset():
    frame = sky().astype(np.float32) - 5000.0  # calibrated frames can be negative
    stats = features.histogram_statistics(frame)
    assert stats["median"] == pytest.approx(np.median(frame), abs=0.6)
    assert stats["sigma"] == pytest.approx(12.0, rel=0.05)


def test_stars_raise_the_high_fraction_not_sigma():
    frame = sky().astype(np.float32)
    frame[::20, ::20] += 5000.0
    stats = features.histogram_statistics(frame.astype(np.uint16))
    assert stats["pct_high"] == pytest.approx(100 / 400, rel=0.05)
    assert stats["sigma"] == pytest.approx(12.0, rel=0.05)


def test_laplacian_and_sobel_equal_scipy():
    from scipy import ndimage

    image = np.random.default_rng(1).normal(size=(40, 50)).astype(np.float32)
    np.testing.assert_allclose(features.laplacian(image), ndimage.laplace(image)[1:-1, 1:-1],
                               atol=1e-5)
    reference = np.hypot(ndimage.sobel(image, 0), ndimage.sobel(image, 1))[1:-1, 1:-1]
    np.testing.assert_allclose(features.sobel_magnitude(image), reference, atol=1e-5)


def test_pixel_noise_ignores_gradients():
    yy, xx = np.mgrid[0:300, 0:400]
    frame = (sky().astype(np.float64) + 0.8 * xx + 0.5 * yy).astype(np.uint16)
    assert features.pixel_noise(frame) == pytest.approx(12.0, rel=0.05)
    assert features.histogram_statistics(frame)["sigma"] > 50  # the histogram widens


def test_banding_raises_row_noise_and_a_hot_column_the_column_peak():
    clean = sky().astype(np.float32)
    banded = clean + np.random.default_rng(2).normal(0, 6, (clean.shape[0], 1))
    hot = clean.copy()
    hot[:, 123] += 30.0
    f_clean = features.frame_features(clean.astype(np.uint16))
    f_band = features.frame_features(banded.astype(np.uint16))
    f_hot = features.frame_features(hot.astype(np.uint16))
    assert f_band["row_noise"] > 5 * f_clean["row_noise"]
    assert f_hot["col_peak"] > 10 * f_clean["col_peak"]
    assert f_hot["row_noise"] < 3 * f_clean["row_noise"]


def test_gradient_and_dark_edge():
    yy, xx = np.mgrid[0:256, 0:256]
    frame = sky(256, 256).astype(np.float32) + 0.5 * xx
    dark = sky(256, 256).astype(np.float32)
    dark[:, :64] = 100.0
    assert features.frame_features(frame.astype(np.uint16))["bkg_gradient"] > 8
    found = features.frame_features(dark.astype(np.uint16))
    assert found["edge_dark"] > 20 and found["dark_area"] == pytest.approx(25, abs=4)


@pytest.mark.parametrize("fwhm", [2.5, 4.0])
def test_blobs_count_stars_and_measure_their_fwhm(fwhm):
    frame, xs, _ = gaussian_stars((256, 256), 36, fwhm)
    found = features.frame_features(frame)
    assert found["n_blobs"] == 36
    assert found["fwhm"] == pytest.approx(fwhm, rel=0.12)
    assert found["ellipticity"] < 0.08


def test_elongated_stars_raise_ellipticity_in_one_direction():
    round_frame, _, _ = gaussian_stars((256, 256), 36, 3.0)
    long_frame, _, _ = gaussian_stars((256, 256), 36, 3.0, elongation=2.0, angle=30)
    assert features.frame_features(round_frame)["ellipticity"] < 0.08
    elongated = FrameView(long_frame)
    assert features.star_shape_features(elongated)["ellipticity"] == pytest.approx(0.5,
                                                                                   abs=0.1)
    assert np.median(elongated.blobs.theta) == pytest.approx(30, abs=5)


def test_a_faint_trail_gives_a_strong_line_and_noise_does_not():
    noise = sky(512, 512, seed=4)
    trail = noise.astype(np.float64)
    yy, xx = np.mgrid[0:512, 0:512]
    distance = np.abs((yy - 40) - 0.6 * xx) / np.hypot(1, 0.6)
    trail += 8.0 * np.exp(-0.5 * (distance / 1.2) ** 2)  # peak 0.7σ per pixel
    quiet = features.streak_features(FrameView(noise))
    found = features.streak_features(FrameView(trail.astype(np.uint16)))
    assert quiet["line_snr"] < 7
    assert found["line_snr"] > 12
    assert found["line_snr_angle"] == pytest.approx(np.degrees(np.arctan(0.6)) + 90, abs=4) or \
        found["line_snr_angle"] == pytest.approx(np.degrees(np.arctan(0.6)) - 90 + 180, abs=4)


def test_a_bright_trail_is_a_hough_segment_with_overlays_in_full_pixels():
    frame = sky(512, 512, seed=5).astype(np.float64)
    for x in range(30, 480):
        frame[int(100 + 0.5 * x), x] += 400.0
    found = features.frame_features(frame.astype(np.uint16))
    assert found["n_lines"] >= 1 and found["line_len_max"] > 0.5
    assert found["line_angle"] == pytest.approx(np.degrees(np.arctan(0.5)), abs=2)
    drawn = features.frame_overlays(frame.astype(np.uint16))
    x0, y0, x1, y1 = max(drawn["streaks"], key=lambda s: abs(s[2] - s[0]))
    assert abs((y1 - y0) / (x1 - x0) - 0.5) < 0.03


def test_binning_keeps_noise_units_and_star_counts():
    frame, _, _ = gaussian_stars((600, 800), 49, 6.0, flux=2e5)
    full = features.frame_features(frame)
    original = features.MAX_BINNED_SIDE
    try:
        features.MAX_BINNED_SIDE = 400  # binned by 2
        binned = features.frame_features(frame)
    finally:
        features.MAX_BINNED_SIDE = original
    assert binned["bin_factor"] == 2 and full["bin_factor"] == 1
    assert binned["n_blobs"] == full["n_blobs"] == 49
    assert binned["fwhm"] == pytest.approx(full["fwhm"], rel=0.05)


def test_relative_features_ignore_frames_kept_out_of_the_reference():
    table = pd.DataFrame({"dataset": ["a"] * 4 + ["b"] * 2,
                          "fwhm": [2.0, 2.0, 2.0, 50.0, 4.0, 6.0],
                          "median": [100.0, 100.0, 100.0, 100.0, 10.0, 10.0]})
    reference = pd.Series([True, True, False, False, True, True])
    out = features.add_relative_features(table, reference)
    assert out["rel_fwhm"].tolist() == pytest.approx([0, 0, 0, 24, -0.2, 0.2])
    assert out["rel_median"].tolist() == pytest.approx([0, 0, 0, 0, 0, 0])
