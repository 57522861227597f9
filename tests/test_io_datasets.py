"""Finding datasets in files and folders, and ordering their frames."""

from __future__ import annotations

import gzip
import os

import numpy as np
from astropy.io import fits

from skytriage.errors import SkytriageInputError
from skytriage.io import Dataset, find_datasets


def _frame(path, date=None, **cards):
    hdu = fits.PrimaryHDU(np.ones((4, 5), dtype=np.uint16))
    if date:
        hdu.header["DATE-OBS"] = date
    hdu.header.update(cards)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path)
    return str(path)


def _names(dataset: Dataset) -> list[str]:
    return [os.path.basename(p) for p in dataset.paths]


def test_folder_ordered_by_date_obs(tmp_path):
    folder = tmp_path / "field1"
    _frame(folder / "a.fits", "2024-01-01T22:00:03")
    _frame(folder / "b.fits", "2024-01-01T22:00:01")
    _frame(folder / "c.fits", "2024-01-01T22:00:02")
    datasets, errors = find_datasets([folder])
    assert errors == []
    assert [(d.name, d.root) for d in datasets] == [("field1", str(folder))]
    assert _names(datasets[0]) == ["b.fits", "c.fits", "a.fits"]


def test_date_ties_ordered_by_name_and_time_obs_used(tmp_path):
    folder = tmp_path / "f"
    _frame(folder / "frame_10.fits", "2024-01-01", **{"TIME-OBS": "01:00:00"})
    _frame(folder / "frame_2.fits", "2024-01-01", **{"TIME-OBS": "01:00:00"})
    _frame(folder / "frame_1.fits", "2024-01-01", **{"TIME-OBS": "02:00:00"})
    _frame(folder / "frame_3.fits", "2024-01-01T00:30:00Z")
    datasets, _ = find_datasets([folder])
    assert _names(datasets[0]) == ["frame_3.fits", "frame_2.fits", "frame_10.fits",
                                   "frame_1.fits"]


def test_natural_name_order_when_a_date_is_missing(tmp_path):
    folder = tmp_path / "f"
    _frame(folder / "frame_10.fits", "2024-01-01T00:00:01")
    _frame(folder / "frame_2.fits", "2024-01-01T00:00:03")
    _frame(folder / "frame_1.fits")
    datasets, errors = find_datasets([folder])
    assert errors == []
    assert _names(datasets[0]) == ["frame_1.fits", "frame_2.fits", "frame_10.fits"]


def test_every_suffix_any_case_and_nothing_else(tmp_path):
    folder = tmp_path / "mixed"
    for name in ["a.fits", "b.FIT", "c.fts", "e.txt", "f.png", ".hidden.fits"]:
        _frame(folder / name)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.ones((4, 5), np.uint16))]
                 ).writeto(folder / "d.fits.fz")
    (folder / "g.Fits.GZ").write_bytes(gzip.compress((folder / "a.fits").read_bytes()))
    (folder / "sub.fits").mkdir()
    datasets, errors = find_datasets([folder])
    assert errors == []
    assert _names(datasets[0]) == ["a.fits", "b.FIT", "c.fts", "d.fits.fz", "g.Fits.GZ"]


def test_date_obs_of_tile_compressed_frame_in_its_extension(tmp_path):
    folder = tmp_path / "fz"
    _frame(folder / "a.fits", "2024-01-01T00:00:02")
    hdu = fits.CompImageHDU(np.ones((4, 5), np.uint16))
    hdu.header["DATE-OBS"] = "2024-01-01T00:00:01"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(folder / "b.fits.fz")
    datasets, _ = find_datasets([folder])
    assert _names(datasets[0]) == ["b.fits.fz", "a.fits"]


def test_night_folder_gives_one_dataset_per_subfolder(tmp_path):
    night = tmp_path / "2024-01-01"
    _frame(night / "field_10" / "x.fits")
    _frame(night / "field_2" / "y.fits")
    _frame(night / "field_2" / "z.fits")
    (night / "calib").mkdir()
    (night / "log.txt").write_text("clear")
    datasets, errors = find_datasets([night])
    assert errors == []
    assert [d.name for d in datasets] == ["field_2", "field_10"]
    assert datasets[0].root == os.path.join(str(night), "field_2")
    assert _names(datasets[0]) == ["y.fits", "z.fits"]


def test_several_folders_and_loose_files(tmp_path):
    _frame(tmp_path / "m31" / "a.fits")
    _frame(tmp_path / "m33" / "b.fits")
    loose1 = _frame(tmp_path / "misc" / "c_10.fits")
    loose2 = _frame(tmp_path / "misc" / "c_9.fits")
    other = _frame(tmp_path / "other" / "d.fits")
    inputs = [tmp_path / "m33", str(tmp_path / "m31"), loose1, other, loose2]
    datasets, errors = find_datasets(inputs)
    assert errors == []
    assert [d.name for d in datasets] == ["m33", "m31", "misc", "other"]
    assert datasets[2].paths == [loose2, loose1]
    assert datasets[2].root == str(tmp_path / "misc")


def test_paths_kept_as_given(tmp_path, monkeypatch):
    _frame(tmp_path / "data" / "a.fits")
    monkeypatch.chdir(tmp_path)
    datasets, _ = find_datasets(["data/", "data/a.fits"])
    assert datasets == [Dataset(name="data", root="data/", paths=["data/a.fits"])]
    datasets, _ = find_datasets([os.path.join("data", "a.fits")])
    assert datasets == [Dataset(name="data", root="data", paths=[os.path.join("data", "a.fits")])]


def test_clashing_folder_names_are_qualified(tmp_path):
    _frame(tmp_path / "night1" / "field" / "a.fits")
    _frame(tmp_path / "night2" / "field" / "b.fits")
    datasets, _ = find_datasets([tmp_path / "night1", tmp_path / "night2"])
    assert [d.name for d in datasets] == ["night1/field", "night2/field"]


def test_corrupt_frame_reported_and_others_kept(tmp_path):
    folder = tmp_path / "f"
    good = [_frame(folder / f"frame_{i}.fits", f"2024-01-01T00:00:0{i}") for i in range(3)]
    (folder / "frame_9.fits").write_text("not a fits file")
    empty = folder / "frame_8.fits"
    fits.PrimaryHDU().writeto(empty)
    datasets, errors = find_datasets([folder])
    assert datasets[0].paths == good  # every readable frame has a date: date order
    assert sorted(e.path for e in errors) == [str(empty), str(folder / "frame_9.fits")]
    assert all(isinstance(e, SkytriageInputError) for e in errors)
    assert {e.cause.split(" (")[0] for e in errors} == {"not a FITS file",
                                                       "no image data in any HDU"}


def test_empty_folder_and_missing_path_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no frames")
    _frame(tmp_path / "ok" / "a.fits")
    datasets, errors = find_datasets([tmp_path / "empty", tmp_path / "gone", tmp_path / "ok"])
    assert [d.name for d in datasets] == ["ok"]
    assert [(e.path, e.cause.split(" (")[0]) for e in errors] == [
        (str(tmp_path / "empty"), "folder holds no frames"),
        (str(tmp_path / "gone"), "no such file or folder"),
    ]


def test_many_frames_read_headers_only(tmp_path, monkeypatch):
    n = 120
    folder = tmp_path / "big"
    for i in range(n):
        _frame(folder / f"f{i}.fits", f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}")

    def no_data(*args, **kwargs):
        raise AssertionError("pixel data read while finding datasets")

    monkeypatch.setattr(fits.PrimaryHDU, "data", property(no_data))
    datasets, errors = find_datasets([folder])
    assert errors == [] and _names(datasets[0]) == [f"f{i}.fits" for i in range(n)]
