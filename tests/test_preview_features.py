"""The first preview features measure what they claim, against numpy and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from skytriage.preview import features
from skytriage.preview.detect import score_dataset


def sky(ny=300, nx=400, level=1000.0, noise=12.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.normal(level, noise, (ny, nx))), 0, 65535).astype(np.uint16)


def test_histogram_statistics_match_numpy_on_noise():
    frame = sky()
    stats = features.histogram_statistics(frame)
    assert stats["median"] == pytest.approx(np.median(frame), abs=0.2)
    assert stats["mean"] == pytest.approx(frame.mean(), rel=1e-9)
    assert stats["std"] == pytest.approx(frame.std(), rel=1e-6)
    assert stats["sigma"] == pytest.approx(12.0, rel=0.03)
    assert stats["p99"] == pytest.approx(np.percentile(frame, 99), abs=0.6)
    assert stats["pct_low"] == pytest.approx(0.135, abs=0.06)  # Gaussian tail below -3σ


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
    image = np.random.default_rng(1).normal(size=(40, 50)).astype(np.float32)
    np.testing.assert_allclose(features.laplacian(image), ndimage.laplace(image)[1:-1, 1:-1],
                               atol=1e-5)
    reference = np.hypot(ndimage.sobel(image, 0), ndimage.sobel(image, 1))[1:-1, 1:-1]
    np.testing.assert_allclose(features.sobel_magnitude(image), reference, atol=1e-5)


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
    assert features.frame_features(dark.astype(np.uint16))["edge_dark"] > 20


def test_robust_scoring_flags_only_the_odd_frame():
    rows = [features.frame_features(sky(seed=s)) for s in range(12)]
    odd = sky(seed=99).astype(np.float32)
    odd[:, :100] = 50.0  # an obstruction over a quarter of the frame
    rows.append(features.frame_features(odd.astype(np.uint16)))
    scored = score_dataset(pd.DataFrame(rows))
    assert scored["is_anomaly"].tolist() == [False] * 12 + [True]
    assert scored["label"].iloc[-1] == "obstruction"
