"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

The tests start the server and the browser themselves. With ``SKYTRIAGE_SCREENSHOTS=DIR``
they also save one screenshot per view there (``dashboard_overview.png``,
``dashboard_dataset.png``, ``dashboard_frame.png``); the README shows those of docs/images.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from dashboard_fixtures import DashboardServer, post_json

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's Chromium at /usr/bin/chromium "
                                       "(apt-get install chromium)")


@pytest.fixture(scope="module")
def db_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser-db") / "labels.sqlite"


@pytest.fixture(scope="module")
def server(dashboard_result, db_file):
    with DashboardServer(dashboard_result, f"sqlite:///{db_file}") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900},
                                  accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def console_errors(page) -> list[str]:
    """Every console error and uncaught exception of the page, as they come."""
    errors: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda err: errors.append(str(err)))
    return errors


def screenshot(page, tmp_path: Path, view: str) -> Path:
    """Save a full-page screenshot; also into $SKYTRIAGE_SCREENSHOTS when set."""
    path = tmp_path / f"dashboard_{view}.png"
    page.screenshot(path=path, full_page=True)
    folder = os.environ.get("SKYTRIAGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(folder) / path.name)
    return path


def wait_for_thumbnails(page) -> None:
    """Wait until every thumbnail of the overview has loaded."""
    page.wait_for_function("[...document.querySelectorAll('.thumb img')].every("
                           "i => i.complete && i.naturalWidth > 0)")


def wait_for_frame_image(page) -> int:
    """Wait until the frame's picture is in the plot and its PNG decodes; its width (px)."""
    image = page.locator("#frame-graph .imagelayer image")
    image.wait_for(state="attached")
    return page.evaluate("""href => new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img.naturalWidth);
        img.onerror = reject;
        img.src = href;
    })""", image.get_attribute("href"))


def open_dataset(page, server, name: str) -> None:
    page.goto(server.url + "/")
    page.locator("#counts").get_by_role("link", name=name).click()
    page.wait_for_url(f"**/dataset/{name}")
    page.locator("#series-graph .scatterlayer .point").first.wait_for()


def click_point(page, graph: str) -> None:
    """Hover then click the first marker of a Plotly graph, as a user does."""
    box = page.locator(f"#{graph} .scatterlayer .point").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def test_overview_loads_without_console_errors(page, console_errors, server, dashboard_result,
                                               tmp_path):
    frames = pd.read_parquet(dashboard_result / "frames.parquet")
    page.goto(server.url + "/")
    page.locator("#counts").wait_for()
    wait_for_thumbnails(page)
    rows = page.locator("#counts tbody tr")
    assert rows.count() == frames["dataset"].nunique()
    assert page.locator(".thumb img").count() >= frames["dataset"].nunique()
    screenshot(page, tmp_path, "overview")
    assert console_errors == []


def test_a_dataset_opens_with_its_plots(page, console_errors, server, dashboard_result, tmp_path):
    frames = pd.read_parquet(dashboard_result / "frames.parquet")
    name = frames["dataset"][0]
    open_dataset(page, server, name)
    n_frames = int((frames["dataset"] == name).sum())
    # two panels (feature, score) of one point per frame, then the scatter
    assert page.locator("#series-graph .scatterlayer .point").count() == 2 * n_frames
    page.locator("#scatter-graph .scatterlayer .point").first.wait_for()
    assert page.locator("#scatter-graph .scatterlayer .point").count() == n_frames
    screenshot(page, tmp_path, "dataset")
    assert console_errors == []


def test_clicking_a_point_opens_its_frame(page, console_errors, server, dashboard_result):
    frames = pd.read_parquet(dashboard_result / "frames.parquet")
    open_dataset(page, server, frames["dataset"][0])
    click_point(page, "series-graph")
    page.wait_for_url("**/frame/*")
    frame_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.locator("#frame-title").filter(has_text=frames["path"][frame_id]).wait_for()
    assert wait_for_frame_image(page) > 0
    assert console_errors == []


def test_key_press_stores_a_label_in_the_database(page, console_errors, server,
                                                  dashboard_result, db_file, tmp_path):
    frames = pd.read_parquet(dashboard_result / "frames.parquet")
    # the most anomalous frame that the model calls a satellite (overlays in the picture)
    ranked = frames.iloc[:-1].sort_values("anomaly_score", ascending=False)
    frame_id = int((ranked[ranked["label"] == "satellite"].index.tolist() + [ranked.index[0]])[0])
    page.goto(f"{server.url}/frame/{frame_id}")
    page.locator("#frame-title").filter(has_text=frames["path"][frame_id]).wait_for()
    page.locator("#user").fill("tester")
    page.locator("#user").press("Enter")
    page.locator("#frame-title").click()
    page.keyboard.press("1")
    page.locator("#status").filter(has_text="stored satellite").wait_for()
    page.locator("#frame-labels").filter(has_text="satellite — tester").wait_for()
    with sqlite3.connect(db_file) as conn:
        rows = conn.execute("SELECT path, frame, label, user FROM labels").fetchall()
    assert (frames["path"][frame_id], int(frames["frame"][frame_id]), "satellite",
            "tester") in rows
    page.keyboard.press("ArrowRight")
    page.wait_for_url(f"**/frame/{frame_id + 1}")
    page.locator("#frame-title").filter(has_text=frames["path"][frame_id + 1]).wait_for()
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"**/frame/{frame_id}")
    page.locator("#frame-title").filter(has_text=frames["path"][frame_id]).wait_for()
    wait_for_frame_image(page)
    screenshot(page, tmp_path, "frame")
    assert console_errors == []


def test_export_downloads_every_label_as_csv(page, console_errors, server, dashboard_result,
                                            db_file):
    frames = pd.read_parquet(dashboard_result / "frames.parquet")
    label = {"path": frames["path"][0], "frame": int(frames["frame"][0]), "label": "slew",
             "user": "script"}
    assert post_json(server.url + "/api/labels", label).status == 201
    page.goto(server.url + "/")
    with page.expect_download() as download:
        page.locator("#export-link").click()
    path = download.value.path()
    rows = list(csv.DictReader(Path(path).open()))
    with sqlite3.connect(db_file) as conn:
        stored = conn.execute("SELECT id, path, frame, label, user FROM labels "
                              "ORDER BY id").fetchall()
    assert [(int(r["id"]), r["path"], int(r["frame"]), r["label"], r["user"]) for r in rows
            ] == stored
    assert console_errors == []
