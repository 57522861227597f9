"""The labelled frame simulator: each anomaly moves its statistic; files and truth table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import sep
from astropy.io import fits
from astropy.table import Table
from scipy.ndimage import gaussian_filter
from skimage.transform import probabilistic_hough_line

from skytriage.preview.simulate import (
    CLASSES,
    FrameSpec,
    draw_field,
    obstruction_map,
    render_frame,
    simulate_frames,
)
from skytriage.sky import star_field

SHAPE = (384, 384)


@pytest.fixture(scope="module")
def field():
    """A field with enough bright stars for every statistic, on a quiet sky."""
    rng = np.random.default_rng(11)
    fld = draw_field("test", SHAPE, rng)
    stars = star_field(SHAPE, 400, rng, fmin=300.0, fmax=3e5, alpha=2.2, margin=10)
    return dataclasses.replace(fld, stars=stars, fwhm=2.8, beta=3.0, sky_level=200.0,
                               sky_gradient=0.02, vignetting=0.1)


def _frame(fld, **changes) -> np.ndarray:
    """Render the field (same noise seed every time) and return it in e-, bias removed."""
    spec = dataclasses.replace(FrameSpec(fwhm=fld.fwhm, beta=fld.beta,
                                         sky_level=fld.sky_level), **changes)
    image, _ = render_frame(fld, spec, np.random.default_rng(0))
    return (image.astype(np.float64) - fld.camera.bias) * fld.camera.gain


def _detect(data: np.ndarray):
    """sep background and the sources above 5 sigma."""
    bkg = sep.Background(data, bw=32, bh=32)
    objects = sep.extract(data - bkg.back(), 5.0, err=bkg.globalrms, minarea=5)
    return objects, bkg


def _long_lines(data: np.ndarray) -> int:
    """Number of straight segments >= 150 px found by the probabilistic Hough transform."""
    _, bkg = _detect(data)
    smooth = gaussian_filter(data - bkg.back(), 1.5)
    rms = 1.4826 * np.median(np.abs(smooth - np.median(smooth)))
    lines = probabilistic_hough_line(smooth > 3 * rms, threshold=10, line_length=150,
                                     line_gap=3, rng=0)
    return len(lines)


def _detrended_var(medians: np.ndarray) -> float:
    """Variance of row or column medians about a quadratic (sky gradient, vignetting)."""
    t = np.arange(medians.size)
    return float(np.var(medians - np.polyval(np.polyfit(t, medians, 2), t)))


def _row_median_var(data: np.ndarray) -> float:
    return _detrended_var(np.median(data, axis=1))


def _column_median_var(data: np.ndarray) -> float:
    return _detrended_var(np.median(data, axis=0))


@pytest.fixture(scope="module")
def normal(field):
    return _frame(field)


def test_satellite_trail_is_a_long_line_only_when_present(field, normal):
    peak = 2.0 * field.noise  # faint: 2 sigma per pixel on the trail's axis
    trail = (-50.0, 40.0, 450.0, 300.0, peak, 3.5)
    assert _long_lines(normal) == 0
    assert _long_lines(_frame(field, trails=(trail,))) >= 1


def test_slew_makes_every_star_a_streak(field, normal):
    slewed = _frame(field, slew_length=60.0, slew_angle=20.0)
    still, _ = _detect(normal)
    streaks, _ = _detect(slewed)
    assert np.median(still["a"] / still["b"]) < 1.6
    assert np.median(streaks["a"] / streaks["b"]) > 4


def test_tracking_error_raises_ellipticity(field, normal):
    trailed = _frame(field, tracking_length=8.0, tracking_angle=60.0)
    still, _ = _detect(normal)
    elongated, _ = _detect(trailed)
    e_still = np.median(1 - still["b"] / still["a"])
    e_trailed = np.median(1 - elongated["b"] / elongated["a"])
    assert e_trailed > e_still + 0.25
    theta = np.degrees(np.median(elongated["theta"][elongated["flux"] > 2e4]))
    assert theta == pytest.approx(60.0, abs=10)


def test_cloud_hides_stars_and_structures_the_background(field, normal):
    cloudy = _frame(field, cloud_depth=0.8, cloud_emission=field.sky_level, cloud_scale=120.0,
                    cloud_coverage=0.6, cloud_seed=1)
    clear_objects, clear_bkg = _detect(normal)
    cloud_objects, cloud_bkg = _detect(cloudy)
    assert len(cloud_objects) < 0.8 * len(clear_objects)
    assert np.var(cloud_bkg.back()) > 5 * np.var(clear_bkg.back())


def test_obstruction_empties_an_edge(field, normal):
    blocked = _frame(field, obstruction_kind="dome", obstruction_edge="left",
                     obstruction_reach=200.0, obstruction_blur=5.0,
                     obstruction_scatter=0.05 * field.sky_level)
    clear_objects, _ = _detect(normal)
    blocked_objects, _ = _detect(blocked)
    assert np.count_nonzero(clear_objects["x"] < 120) >= 10
    assert np.count_nonzero(blocked_objects["x"] < 120) == 0
    assert np.median(blocked[:, :120]) < 0.3 * np.median(normal[:, :120])


@pytest.mark.parametrize("kind", ["dome", "tree", "person"])
@pytest.mark.parametrize("edge", ["left", "right", "bottom", "top"])
def test_obstruction_grows_from_its_edge(kind, edge):
    def occ(reach):
        spec = FrameSpec(2.0, 3.0, 100.0, obstruction_kind=kind, obstruction_edge=edge,
                         obstruction_reach=reach, obstruction_blur=2.0, obstruction_seed=3)
        return obstruction_map((120, 160), spec)

    small, large = occ(20.0), occ(70.0)
    assert 0 < small.mean() < large.mean() < 0.7
    edge_pixels = {"left": large[:, 0], "right": large[:, -1], "bottom": large[0],
                   "top": large[-1]}[edge]
    opposite = {"left": large[:, -1], "right": large[:, 0], "bottom": large[-1],
                "top": large[0]}[edge]
    assert edge_pixels.max() > 0.99 and opposite.max() < 0.01


def test_defocus_widens_stars_and_lowers_peaks(field, normal):
    stars = field.stars[(field.stars["x"] > 5) & (field.stars["x"] < SHAPE[1] - 6)
                        & (field.stars["y"] > 5) & (field.stars["y"] < SHAPE[0] - 6)]
    bright = stars[np.argsort(stars["flux"])[-15:]]
    x = np.rint(np.asarray(bright["x"])).astype(int)
    y = np.rint(np.asarray(bright["y"])).astype(int)

    def peaks(data):
        sub = data - np.median(data)
        return np.array([sub[j - 2:j + 3, i - 2:i + 3].max()
                         for i, j in zip(x, y, strict=True)])

    def radius(data):
        objects, bkg = _detect(data)
        keep = objects["flux"] > 5e3
        r, _ = sep.flux_radius(data - bkg.back(), objects["x"][keep], objects["y"][keep],
                               np.full(keep.sum(), 15.0), 0.5)
        return np.median(r)

    donut = _frame(field, defocus_kind="donut", donut_radius=10.0)
    soft = _frame(field, defocus_kind="soft", defocus_factor=1.8)
    assert np.median(peaks(donut) / peaks(normal)) < 0.3
    assert radius(soft) > 1.3 * radius(normal)
    assert radius(donut) > 2 * radius(normal)


@pytest.mark.parametrize("kind,factor", [("twilight", 4.0), ("moon", 3.0)])
def test_bright_sky_raises_the_median(field, normal, kind, factor):
    bright = _frame(field, background_kind=kind, background_factor=factor,
                    background_angle=30.0)
    assert np.median(bright) > 0.8 * factor * np.median(normal)


@pytest.mark.parametrize("kind,amplitude,statistic", [
    ("banding", 10.0, _row_median_var), ("hot_row", 200.0, _row_median_var),
    ("hot_column", 200.0, _column_median_var), ("glitch_offset", 300.0, _row_median_var),
    ("glitch_zeros", 0.0, _row_median_var),
    ("glitch_garbage", 0.0, _row_median_var)])
def test_camera_faults_raise_row_or_column_variance(field, normal, kind, amplitude, statistic):
    faulty = _frame(field, camera_kind=kind, camera_amplitude=amplitude, camera_start=100,
                    camera_extent=1 if kind in ("hot_row", "banding") else 60)
    assert statistic(faulty) > 5 * statistic(normal)


def test_glitch_shift_moves_a_block_of_rows_sideways(field, normal):
    shifted = _frame(field, camera_kind="glitch_shift", camera_amplitude=40.0,
                     camera_start=100, camera_extent=60)
    np.testing.assert_array_equal(shifted[100:160], np.roll(normal[100:160], 40, axis=1))
    np.testing.assert_array_equal(shifted[:100], normal[:100])


# --------------------------------------------------------------------------- files


def test_simulate_frames_writes_deterministic_files_without_truth_in_headers(tmp_path):
    calls = []
    truth = simulate_frames(tmp_path / "a", n_datasets=2, frames_per_dataset=6,
                            shape=(96, 128), seed=4, progress=lambda n, t: calls.append((n, t)))
    again = simulate_frames(tmp_path / "b", n_datasets=2, frames_per_dataset=6,
                            shape=(96, 128), seed=4)
    simulate_frames(tmp_path / "c", n_datasets=1, frames_per_dataset=1, shape=(96, 128),
                    seed=5)
    pd.testing.assert_frame_equal(truth, again)
    assert calls == [(n, 12) for n in range(1, 13)]
    assert list(truth["path"]) == [f"field_00{d}/frame_{k:04d}.fits"
                                   for d in range(2) for k in range(6)]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "truth.csv", keep_default_na=False),
                                  truth, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "truth.parquet"), truth)
    dates = []
    for path in truth["path"]:
        with fits.open(tmp_path / "a" / path) as a, fits.open(tmp_path / "b" / path) as b:
            np.testing.assert_array_equal(a[0].data, b[0].data)
            header = a[0].header
            assert a[0].data.dtype == np.uint16 and a[0].data.shape == (96, 128)
        assert header["BITPIX"] == 16 and header["BZERO"] == 32768
        assert header["EXPTIME"] == 5.0 and header["GAIN"] > 0 and header["RDNOISE"] > 0
        assert header["INSTRUME"] and header["OBJECT"] == path.split("/")[0]
        text = repr(header).lower()
        assert not any(word in text for word in (*CLASSES, "strength", "label"))
        dates.append(pd.Timestamp(header["DATE-OBS"]))
    steps = np.diff(dates[:6]) / pd.Timedelta(seconds=1)
    assert np.all((steps > 5) & (steps < 10)) and np.ptp(steps) < 1e-3
    with fits.open(tmp_path / "c" / "field_000" / "frame_0000.fits") as c:
        with fits.open(tmp_path / "a" / "field_000" / "frame_0000.fits") as a:
            assert not np.array_equal(a[0].data, c[0].data)
    stars = Table.read(tmp_path / "a" / "field_000" / "stars.ecsv")
    assert stars.colnames == ["x", "y", "flux"] and len(stars) == truth["n_stars"].iloc[0]
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "a").rglob("*"))


def test_truth_table_covers_every_class_with_mostly_normal_frames(tmp_path):
    truth = simulate_frames(tmp_path, n_datasets=3, frames_per_dataset=40, shape=(96, 96),
                            seed=0)
    assert len(truth) == 120
    labels = truth["labels"].str.split(";")
    present = set().union(*labels)
    assert present == {"normal", *CLASSES}
    assert 0.6 <= (truth["label"] == "normal").mean() <= 0.8
    assert (labels.str.len() > 1).any()
    assert all(label in parts for label, parts in zip(truth["label"], labels, strict=True))
    assert truth["strength"].between(0, 1).all()
    assert (truth.loc[truth["label"] == "normal", "strength"] == 0).all()
    assert (truth.loc[truth["label"] != "normal", "strength"] > 0).all()
    for column in ("n_trails", "sky_level", "fwhm", "cloud_attenuation", "slew_length",
                   "obstruction_fraction", "camera_kind", "date_obs", "gain"):
        assert column in truth
    assert (truth.loc[truth["labels"].str.contains("satellite"), "n_trails"] > 0).all()
    assert (truth.loc[truth["labels"].str.contains("cloud"), "cloud_attenuation"] > 0).all()
