"""Writers round-trip their data, record provenance and never leave half a file."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

import skytriage
from skytriage.io import (
    atomic_path,
    read_frame,
    write_csv,
    write_ecsv,
    write_fits,
    write_json,
    write_parquet,
)


def _frame_table() -> pd.DataFrame:
    return pd.DataFrame({
        "path": ["a.fits", "b.fits"],
        "frame": np.array([0, 1], dtype=np.int64),
        "anomaly_score": np.array([0.25, 0.75], dtype=np.float64),
        "is_anomaly": [False, True],
    })


def _leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith(".tmp-"))


def test_write_fits_float_round_trip_with_header(tmp_path):
    data = np.random.default_rng(0).normal(100, 5, (12, 9)).astype(np.float32)
    header = fits.Header({"OBJECT": "M42", "GAIN": 1.3})
    path = write_fits(tmp_path / "clean.fits", data, header)
    assert path == tmp_path / "clean.fits"
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(hdul[0].data, data)
        assert hdul[0].header["OBJECT"] == "M42" and hdul[0].header["GAIN"] == 1.3
        assert hdul[0].header["SKYTVER"] == skytriage.__version__
    assert "SKYTVER" not in header  # the caller's header is not changed


def test_write_fits_uint16_as_int16_bzero(tmp_path):
    mask = np.array([[0, 1, 2], [8, 32, 65535]], dtype=np.uint16)
    path = write_fits(tmp_path / "mask.fits", mask)
    header = fits.getheader(path)
    assert (header["BITPIX"], header["BZERO"], header["BSCALE"]) == (16, 32768, 1)
    frame = read_frame(path, dtype=None)
    assert frame.data.dtype == np.uint16
    np.testing.assert_array_equal(frame.data, mask)


def test_write_fits_bool_as_uint8(tmp_path):
    mask = np.array([[True, False], [False, True]])
    path = write_fits(tmp_path / "m.fits", mask)
    assert fits.getheader(path)["BITPIX"] == 8
    np.testing.assert_array_equal(fits.getdata(path), mask.astype(np.uint8))


def test_write_fits_provenance(tmp_path):
    command = "skytriage crmask " + " ".join(f"frame_{i:04d}.fits" for i in range(20)) + " --out d"
    provenance = {"command": command, "parameters": {"sigclip": 4.5, "objlim": 5, "niter": 4}}
    before = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    path = write_fits(tmp_path / "mask.fits", np.ones((3, 3), np.uint16), provenance=provenance)
    header = fits.getheader(path)
    assert header["SKYTCMD"] == command and len(command) > 68  # continued over CONTINUE cards
    assert header["SKYTVER"] == skytriage.__version__
    written = datetime.fromisoformat(header["DATE"])
    assert before <= written <= datetime.now(UTC).replace(tzinfo=None)
    assert list(header["HISTORY"]) == ["sigclip = 4.5", "objlim = 5", "niter = 4"]


def test_write_fits_gzip_by_suffix(tmp_path):
    data = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    path = write_fits(tmp_path / "clean.fits.gz", data)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_frame(path).data, data)


def test_write_fits_overwrite_false(tmp_path):
    path = write_fits(tmp_path / "a.fits", np.ones((2, 2), np.float32))
    with pytest.raises(FileExistsError, match="a.fits"):
        write_fits(path, np.zeros((2, 2), np.float32), overwrite=False)
    np.testing.assert_array_equal(fits.getdata(path), np.ones((2, 2)))


def test_write_ecsv_from_table_and_dataframe(tmp_path):
    table = Table({"x": [1.5, 2.5], "y": [3, 4], "kind": ["new", "fading"]})
    table["x"].unit = "pix"
    path = write_ecsv(tmp_path / "transients.ecsv", table)
    back = Table.read(path, format="ascii.ecsv")
    assert back.colnames == ["x", "y", "kind"] and str(back["x"].unit) == "pix"
    assert list(back["kind"]) == ["new", "fading"] and list(back["y"]) == [3, 4]
    df = _frame_table()
    back = Table.read(write_ecsv(tmp_path / "f.ecsv", df), format="ascii.ecsv").to_pandas()
    pd.testing.assert_frame_equal(back, df)


def test_write_parquet_round_trip(tmp_path):
    df = _frame_table()
    back = pd.read_parquet(write_parquet(tmp_path / "frames.parquet", df))
    pd.testing.assert_frame_equal(back, df)


def test_write_csv_round_trip(tmp_path):
    df = _frame_table()
    path = write_csv(tmp_path / "frames.csv", df)
    assert path.read_text().splitlines()[0] == "path,frame,anomaly_score,is_anomaly"
    pd.testing.assert_frame_equal(pd.read_csv(path), df)


def test_write_json_converts_numpy_paths_and_nan(tmp_path):
    obj = {
        "n": np.int64(3),
        "score": np.float32(0.5),
        "flag": np.bool_(True),
        "array": np.array([[1.0, np.nan], [np.inf, 2.0]]),
        "path": Path("out") / "mask.fits",
        "nan": float("nan"),
        "pair": (1, 2),
        5: "int key",
    }
    path = write_json(tmp_path / "detections.json", obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert text.startswith('{\n  "n": 3')  # indent=2
    assert json.loads(text) == {
        "n": 3, "score": 0.5, "flag": True, "array": [[1.0, None], [None, 2.0]],
        "path": os.path.join("out", "mask.fits"), "nan": None, "pair": [1, 2], "5": "int key",
    }


def test_atomic_path_renames_on_success_and_keeps_suffix(tmp_path):
    target = tmp_path / "report.html"
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path)
        assert tmp.endswith("report.html") and os.path.basename(tmp).startswith(".tmp-")
        Path(tmp).write_text("<html></html>")
        assert not target.exists()
    assert target.read_text() == "<html></html>"
    assert _leftovers(tmp_path) == []


def test_atomic_path_removes_temp_on_error(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_write_json_unencodable_keeps_old_file(tmp_path):
    path = write_json(tmp_path / "summary.json", {"ok": 1})
    with pytest.raises(TypeError):
        write_json(path, {"ok": 2, "bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert _leftovers(tmp_path) == []


def _write_each(kind: str, path: Path) -> None:
    df = _frame_table()
    writers = {
        "fits": lambda: write_fits(path, np.ones((4, 4), np.float32)),
        "ecsv": lambda: write_ecsv(path, df),
        "parquet": lambda: write_parquet(path, df),
        "csv": lambda: write_csv(path, df),
        "json": lambda: write_json(path, {"a": [1, 2, math.pi]}),
    }
    writers[kind]()


@pytest.mark.parametrize("kind", ["fits", "ecsv", "parquet", "csv", "json"])
def test_failed_rename_keeps_old_content(tmp_path, monkeypatch, kind):
    path = tmp_path / f"out.{kind}"
    path.write_bytes(b"old content")

    def failing_replace(src, dst):
        assert Path(src).exists() and Path(src).stat().st_size > 0  # fully written first
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _write_each(kind, path)
    assert path.read_bytes() == b"old content"
    assert _leftovers(tmp_path) == []


def test_failed_write_midway_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "frames.parquet"
    path.write_bytes(b"old content")

    def half_then_fail(self, target, **kwargs):
        Path(target).write_bytes(b"PAR1 half")
        raise OSError("interrupted")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_fail)
    with pytest.raises(OSError, match="interrupted"):
        write_parquet(path, _frame_table())
    assert path.read_bytes() == b"old content" and _leftovers(tmp_path) == []
