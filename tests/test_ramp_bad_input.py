"""Bad ramps: a one-line error naming the file and the cause, or a documented behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from skytriage.cli import app
from skytriage.errors import SkytriageInputError
from skytriage.ramp import RampSimConfig, run, simulate_ramp
from skytriage.ramp.detect import BAD, CR, SATURATED
from skytriage.ramp.source import open_ramp


def write(path, data, **cards):
    header = fits.Header()
    for key, value in {"GAIN": 2.0, "RDNOISE": 12.0, **cards}.items():
        header[key] = value
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


@pytest.fixture(scope="module")
def ramp():
    config = RampSimConfig(shape=(64, 64), n_groups=12, n_stars=0, snowball_min=0,
                           snowball_rate=0.0, rtn_fraction=0.0, cr_rate=100.0)
    return simulate_ramp(config, 9)


def test_two_dimensional_image_is_refused(tmp_path):
    path = write(tmp_path / "image.fits", np.ones((64, 64), np.uint16))
    with pytest.raises(SkytriageInputError, match=r"image.fits: expected a 3-D .*found 2-D"):
        open_ramp(path)


def test_fewer_than_three_groups_is_refused(tmp_path, ramp):
    path = write(tmp_path / "short.fits", ramp.data[0, :2])
    with pytest.raises(SkytriageInputError, match="short.fits: 2 group.*at least 3 groups"):
        open_ramp(path)


def test_two_groups_in_many_integrations_are_compared_across_integrations(ramp):
    """Documented: with two groups, the one difference of each integration is judged
    against the same pixel's other integrations (the JWST FGS ACQ1 layout)."""
    data = np.stack([ramp.data[0, k:k + 2] for k in range(0, 12, 2)])  # (6, 2, 64, 64)
    data[3, 1, 30, 30] += 500  # a jump of 1000 e- in the 4th integration
    result = run(data, gain=2.0, read_noise=12.0, saturation=50000.0)
    assert result.mask[30, 30] & CR
    hits = [d for d in result.detections if d["x"] == 30 and d["y"] == 30]
    assert hits and hits[0]["int"] == 3


def test_swapped_axes_are_refused(tmp_path, ramp):
    path = write(tmp_path / "yxg.fits", np.moveaxis(ramp.data[0], 0, -1).copy())
    with pytest.raises(SkytriageInputError, match=r"yxg.fits: .*looks like \(y, x, groups\)"):
        open_ramp(path)


def test_nan_reference_pixels_are_ignored_unless_all_are_nan(tmp_path, ramp):
    data = ramp.data[0].astype(np.float32)
    data[:, :2, :] = np.nan  # half the bottom reference rows
    result = run(write(tmp_path / "some_nan.fits", data))
    assert result.mask.shape == (64, 64) and not (result.mask & BAD).any()
    data[:, :4, :] = data[:, -4:, :] = np.nan
    with pytest.raises(SkytriageInputError, match="all_nan.fits: reference pixels .* NaN"):
        run(write(tmp_path / "all_nan.fits", data))


def test_nan_science_pixel_is_marked_bad(ramp):
    data = ramp.data[0].astype(np.float32)
    data[5, 20, 20] = np.nan
    result = run(data, gain=2.0, read_noise=12.0, saturation=50000.0)
    assert result.mask[20, 20] == BAD and np.isnan(result.slope[20, 20])


def test_pixels_saturated_from_the_first_group(ramp):
    """Documented: flagged 32, slope NaN, no event."""
    data = ramp.data[0].copy()
    data[:, 10:14, 40:44] = 50000
    result = run(data, gain=2.0, read_noise=12.0, saturation=50000.0)
    assert (result.mask[10:14, 40:44] == SATURATED).all()
    assert np.isnan(result.slope[10:14, 40:44]).all()
    assert not any(40 <= d["x"] < 44 and 10 <= d["y"] < 14 for d in result.detections)


def test_one_bad_file_does_not_stop_the_batch(tmp_path, ramp):
    good = write(tmp_path / "good.fits", ramp.data[0])
    flat = write(tmp_path / "flat.fits", np.ones((64, 64), np.uint16))
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["ramp", str(good), str(flat), "--out", str(out)])
    assert done.exit_code == 1
    assert "flat.fits: expected a 3-D" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [f["path"] for f in summary["failed"]] == [str(flat)]
    assert summary["failed"][0]["error"].startswith("expected a 3-D")
    assert (out / "good" / "mask.fits").exists() and not (out / "flat").exists()
