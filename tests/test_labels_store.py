"""The label store: SQLAlchemy over a SQLite file in WAL mode, safe with several writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy.exc

from skytriage.io import LabelStore
from skytriage.io.labels import COLUMNS, LABELS


def write_labels(url: str, worker: int, count: int) -> None:
    """A labeller process: ``count`` labels through its own store."""
    store = LabelStore(url)
    for i in range(count):
        store.add(f"night/f_{worker}/frame_{i:04d}.fits", i, LABELS[i % len(LABELS)],
                  f"worker{worker}")
    store.close()


@pytest.fixture
def store(tmp_path):
    labels = LabelStore(LabelStore.default_url(tmp_path))
    yield labels
    labels.close()


def test_default_url_is_a_sqlite_file_in_the_result(tmp_path):
    url = LabelStore.default_url(tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve() / 'labels.sqlite'}"


def test_add_then_all_latest_and_csv(store, tmp_path):
    first = store.add("a.fits", 0, "satellite", "ann")
    store.add("b.fits", 3, "cloud", "bob")
    last = store.add("a.fits", 0, "normal", "bob")
    assert first < last
    table = store.all()
    assert list(table.columns) == COLUMNS
    assert list(table["label"]) == ["satellite", "cloud", "normal"]
    assert str(table["created_at"].dt.tz) == "UTC"
    assert table["created_at"].is_monotonic_increasing
    latest = store.latest().set_index(["path", "frame"])["label"].to_dict()
    assert latest == {("a.fits", 0): "normal", ("b.fits", 3): "cloud"}
    written = pd.read_csv(store.to_csv(tmp_path / "labels.csv"))
    assert list(written.columns) == COLUMNS and list(written["id"]) == list(table["id"])
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize(("path", "frame", "label", "user"), [
    ("a.fits", 0, "aliens", "ann"),
    ("a.fits", 0, "", "ann"),
    ("", 0, "satellite", "ann"),
    (None, 0, "satellite", "ann"),
    ("a.fits", "0", "satellite", "ann"),
    ("a.fits", -1, "satellite", "ann"),
    ("a.fits", True, "satellite", "ann"),
    ("a.fits", 0, "satellite", ""),
])
def test_invalid_labels_raise_and_store_nothing(store, path, frame, label, user):
    with pytest.raises(ValueError):
        store.add(path, frame, label, user)
    assert store.all().empty


def test_sqlite_file_is_in_wal_mode_and_survives_a_new_store(store, tmp_path):
    store.add("a.fits", 1, "camera", "ann")
    store.close()
    with sqlite3.connect(tmp_path / "labels.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = LabelStore(LabelStore.default_url(tmp_path))
    assert list(again.all()["label"]) == ["camera"]
    again.close()


def test_four_processes_write_at_once_and_nothing_is_lost(tmp_path):
    url = LabelStore.default_url(tmp_path)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=write_labels, args=(url, w, 25)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    table = LabelStore(url).all()
    assert len(table) == 100 and table["id"].is_unique
    assert table.groupby("user").size().to_dict() == {f"worker{w}": 25 for w in range(4)}


def test_bad_url_raises(tmp_path):
    with pytest.raises(sqlalchemy.exc.OperationalError, match="unable to open"):
        LabelStore(f"sqlite:///{Path(tmp_path) / 'no' / 'such' / 'dir' / 'l.sqlite'}")
