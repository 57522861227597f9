"""The dashboard's JSON API, served by the real command in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dashboard_fixtures import (
    DashboardServer,
    make_big_result,
    post_json,
    post_labels,
    request,
)
from skytriage.dashboard.data import resolve_frame_path


@pytest.fixture(scope="module")
def db_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("db") / "labels.sqlite"


@pytest.fixture(scope="module")
def server(dashboard_result, db_file):
    with DashboardServer(dashboard_result, f"sqlite:///{db_file}") as running:
        yield running


@pytest.fixture(scope="module")
def frames(dashboard_result) -> pd.DataFrame:
    return pd.read_parquet(dashboard_result / "frames.parquet")


def label_count(db_file: Path) -> int:
    with sqlite3.connect(db_file) as conn:
        return conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]


def a_label(frames: pd.DataFrame, row: int = 0, label: str = "satellite", user: str = "ann"):
    return {"path": frames["path"][row], "frame": int(frames["frame"][row]), "label": label,
            "user": user}


def test_datasets_counts_every_frame(server, frames):
    answer = request(server.url + "/api/datasets")
    assert answer.status == 200
    datasets = answer.json()
    assert [d["dataset"] for d in datasets] == list(dict.fromkeys(frames["dataset"]))
    assert sum(d["frames"] for d in datasets) == len(frames)
    assert sum(d["anomalies"] for d in datasets) == int(frames["is_anomaly"].sum())
    for d in datasets:
        assert sum(d[name] for name in ("normal", "satellite", "cloud", "camera", "slew",
                                        "tracking", "obstruction", "defocus", "background")
                   ) == d["frames"]


def test_frames_are_the_rows_of_frames_parquet(server, frames):
    name = frames["dataset"][0]
    rows = request(f"{server.url}/api/frames?dataset={name}").json()
    expected = frames[frames["dataset"] == name]
    assert [r["id"] for r in rows] == list(expected.index)
    assert [r["path"] for r in rows] == list(expected["path"])
    assert [r["anomaly_score"] for r in rows] == pytest.approx(list(expected["anomaly_score"]))
    assert set(frames.columns) <= set(rows[0])
    assert len(request(server.url + "/api/frames").json()) == len(frames)


def test_one_frame_with_its_labels(server, frames):
    answer = request(server.url + "/api/frames/3")
    assert answer.status == 200
    body = answer.json()
    assert body["path"] == frames["path"][3] and body["id"] == 3
    assert isinstance(body["human_labels"], list)


def test_image_is_png_rendered_once_then_served_from_the_disk_cache(server, dashboard_result):
    url = server.url + "/api/frames/1/image.png?stretch=asinh&size=77"
    first = request(url)
    assert first.status == 200 and first.headers["Content-Type"] == "image/png"
    assert first.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.headers["X-Skytriage-Cache"] == "miss"
    cached = list((dashboard_result / ".cache" / "dashboard").glob("*.png"))
    assert cached
    stamps = {p: p.stat().st_mtime_ns for p in cached}
    second = request(url)
    assert second.headers["X-Skytriage-Cache"] == "hit" and second.body == first.body
    assert {p: p.stat().st_mtime_ns for p in cached} == stamps


def test_overlays_are_streaks_and_blobs_in_pixels(server, dashboard_result):
    answer = request(server.url + "/api/frames/0/overlays")
    assert answer.status == 200
    found = answer.json()
    assert found["shape"] == [256, 256]
    assert all(len(s) == 4 for s in found["streaks"]) and all(len(b) == 5 for b in found["blobs"])
    assert list((dashboard_result / ".cache" / "dashboard").glob("*.json"))


@pytest.mark.parametrize(("path", "status"), [
    ("/api/frames/9999/image.png", 404),
    ("/api/frames/0/image.png?stretch=banana", 400),
    ("/api/frames/0/image.png?size=0", 400),
    ("/api/frames/0/image.png?size=big", 400),
    ("/api/frames/9999", 404),
    ("/api/frames/9999/overlays", 404),
    ("/api/frames?dataset=no_such_dataset", 404),
    ("/api/no_such_endpoint", 404),
])
def test_bad_reads_get_a_json_error(server, path, status):
    answer = request(server.url + path)
    assert answer.status == status
    assert "error" in answer.json()


def test_post_label_then_read_it_back(server, frames, db_file):
    before = label_count(db_file)
    answer = post_json(server.url + "/api/labels", a_label(frames, 2, "cloud", "bob"))
    assert answer.status == 201
    stored = answer.json()
    assert stored["label"] == "cloud" and stored["user"] == "bob" and stored["id"] > 0
    assert label_count(db_file) == before + 1
    labels = request(server.url + "/api/labels").json()
    assert labels[-1]["id"] == stored["id"] and labels[-1]["path"] == frames["path"][2]
    assert labels[-1]["created_at"].startswith("20")
    latest = request(server.url + "/api/labels?latest=1").json()
    assert {(r["path"], r["frame"]) for r in latest} == {(r["path"], r["frame"]) for r in labels}


BAD_BODIES = {
    "not JSON": b"label=satellite",
    "JSON but not an object": b"[1, 2]",
    "no path": {"frame": 0, "label": "satellite", "user": "ann"},
    "unknown label": {"label": "aliens"},
    "label of another case": {"label": "Satellite"},
    "frame not an int": {"frame": "0"},
    "frame a float": {"frame": 0.5},
    "frame a bool": {"frame": True},
    "empty user": {"user": ""},
    "frame not in the result": {"frame": 999},
    "path not in the result": {"path": "elsewhere.fits"},
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_bad_label_gets_4xx_json_error_and_stores_nothing(server, frames, db_file, case):
    body = BAD_BODIES[case]
    if isinstance(body, dict):
        fields = {**a_label(frames), **body}
        if case == "no path":
            del fields["path"]
        body = json.dumps(fields).encode()
    before = label_count(db_file)
    answer = request(server.url + "/api/labels", body)
    assert 400 <= answer.status < 500
    assert answer.json()["error"]
    assert label_count(db_file) == before
    assert request(server.url + "/api/datasets").status == 200


def test_export_csv_has_every_label(server, frames, dashboard_result):
    post_json(server.url + "/api/labels", a_label(frames, 5, "defocus", "cy"))
    answer = request(server.url + "/api/labels.csv")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.body.decode())))
    labels = request(server.url + "/api/labels").json()
    assert [int(r["id"]) for r in rows] == [r["id"] for r in labels]
    assert [r["label"] for r in rows] == [r["label"] for r in labels]
    assert (dashboard_result / "labels.csv").read_bytes() == answer.body


def test_four_processes_label_at_once_and_nothing_is_lost(server, frames, db_file):
    before = label_count(db_file)
    jobs = [[a_label(frames, (w * 25 + i) % len(frames), "satellite", f"worker{w}")
             for i in range(25)] for w in range(4)]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        statuses = pool.starmap(post_labels, [(server.url, job) for job in jobs])
    assert all(s == 201 for batch in statuses for s in batch)
    assert label_count(db_file) == before + 100
    with sqlite3.connect(db_file) as conn:
        per_user = dict(conn.execute("SELECT user, COUNT(*) FROM labels WHERE user LIKE "
                                     "'worker%' GROUP BY user").fetchall())
    assert per_user == {f"worker{w}": 25 for w in range(4)}


def test_labels_persist_across_a_restart(dashboard_result, frames, tmp_path):
    db = f"sqlite:///{tmp_path / 'persist.sqlite'}"
    with DashboardServer(dashboard_result, db) as first:
        assert post_json(first.url + "/api/labels", a_label(frames, 7, "camera")).status == 201
    with DashboardServer(dashboard_result, db) as second:
        labels = request(second.url + "/api/labels").json()
    assert [(r["path"], r["frame"], r["label"]) for r in labels] == [
        (frames["path"][7], int(frames["frame"][7]), "camera")]


def test_a_full_night_table_answers_in_under_a_second(dashboard_result, tmp_path):
    big = make_big_result(dashboard_result, tmp_path / "big")
    with DashboardServer(big, f"sqlite:///{tmp_path / 'big.sqlite'}") as server:
        start = time.perf_counter()
        rows = request(server.url + "/api/frames").json()
        elapsed = time.perf_counter() - start
        one = request(server.url + "/api/frames?dataset=field_029").json()
        datasets = request(server.url + "/api/datasets").json()
    assert len(rows) == 3000 and len(one) == 100 and len(datasets) == 30
    assert elapsed < 1.0


def test_retrain_hands_the_newest_labels_to_preview_and_reloads(dashboard_result, frames,
                                                                 tmp_path, monkeypatch):
    import skytriage.preview
    from skytriage.dashboard import create_app

    result = tmp_path / "result"
    shutil.copytree(dashboard_result, result, ignore=shutil.ignore_patterns("*.sqlite*"))
    calls = []

    def rescore(result_dir, labels):
        calls.append((Path(result_dir), labels))
        table = pd.read_parquet(Path(result_dir) / "frames.parquet")
        table.assign(label="cloud").to_parquet(Path(result_dir) / "frames.parquet")
        return {"hand_labelled": len(labels), "training_frames": 99, "model": "m",
                "anomalies": 0}

    monkeypatch.setattr(skytriage.preview, "retrain_and_rescore", rescore)
    client = create_app(result, f"sqlite:///{tmp_path / 'l.sqlite'}").server.test_client()
    assert client.post("/api/retrain").status_code == 400
    for label in ("satellite", "normal"):
        assert client.post("/api/labels", json=a_label(frames, 1, label)).status_code == 201
    answer = client.post("/api/retrain")
    assert answer.status_code == 200 and answer.json["hand_labelled"] == 1
    (where, labels), = calls
    assert where == result.resolve()
    assert labels.to_dict("records") == [{"path": frames["path"][1],
                                          "frame": int(frames["frame"][1]), "label": "normal"}]
    assert {r["label"] for r in client.get("/api/frames").json} == {"cloud"}


@pytest.mark.slow
def test_retrain_for_real_rescores_the_result(dashboard_result, frames, tmp_path):
    result = tmp_path / "result"
    shutil.copytree(dashboard_result, result, ignore=shutil.ignore_patterns("*.sqlite*"))
    before = (result / "frames.parquet").stat().st_mtime_ns
    with DashboardServer(result) as server:
        for row in range(4):
            post_json(server.url + "/api/labels", a_label(frames, row, "cloud"))
        answer = request(server.url + "/api/retrain", b"{}", timeout=600)
        assert answer.status == 200, answer.body
        rows = request(server.url + "/api/frames").json()
    assert answer.json()["hand_labelled"] == 4
    assert (result / "frames.parquet").stat().st_mtime_ns != before
    assert len(rows) == len(frames)


def test_bad_result_dir_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "skytriage", "dashboard", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "frames.parquet" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_relative_frame_paths_resolve_against_cwd_then_the_results_parent(tmp_path,
                                                                          monkeypatch):
    (tmp_path / "night").mkdir()
    (tmp_path / "night" / "a.fits").write_bytes(b"")
    result_dir = tmp_path / "result"
    monkeypatch.chdir(tmp_path)
    assert resolve_frame_path("night/a.fits", result_dir) == tmp_path / "night" / "a.fits"
    monkeypatch.chdir(result_dir.parent.parent)
    assert resolve_frame_path("night/a.fits", result_dir) == tmp_path / "night" / "a.fits"
    assert resolve_frame_path("/abs/b.fits", result_dir) == Path("/abs/b.fits")
