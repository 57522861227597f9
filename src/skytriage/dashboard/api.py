"""The JSON API under ``/api/``, a Flask blueprint on Dash's own server.

The page uses it (images, thumbnails, labelling keys, export) and so can scripts:

- ``GET /api/datasets``: one object per dataset (frames, anomalies, labelled, frames per
  model label).
- ``GET /api/frames[?dataset=NAME]``: rows of ``frames.parquet`` with their ``id`` (the
  0-based row number).
- ``GET /api/frames/<id>``: one row, plus ``human_labels``, every label given to it.
- ``GET /api/frames/<id>/image.png[?stretch=zscale|asinh&size=PX]``: the frame as PNG,
  ``size`` its longest side (16..4096); header ``X-Skytriage-Cache: hit|miss``.
- ``GET /api/frames/<id>/overlays``: streaks and blobs preview found,
  ``{shape, streaks, blobs}`` in pixels.
- ``POST /api/labels`` with JSON ``{path, frame, label, user}``: 201 and the stored
  ``{id, path, frame, label, user}``.
- ``GET /api/labels[?latest=1]``: every label, oldest first (or the newest per frame).
- ``GET /api/labels.csv``: every label as CSV, also written to ``RESULT_DIR/labels.csv``.
- ``POST /api/retrain``: retrain the classifier with the newest labels and re-score the
  result; answers the summary (``hand_labelled``, ``training_frames``, ``anomalies``, ...).

Every error is a 4xx or 5xx answer with a JSON body ``{"error": "..."}``; nothing is stored
by a request that fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from flask import Blueprint, Response, current_app, jsonify, request, send_file
from werkzeug.exceptions import (
    BadRequest,
    Conflict,
    HTTPException,
    NotFound,
    UnprocessableEntity,
)

from skytriage.dashboard.data import Dashboard, RetrainBusy
from skytriage.dashboard.images import (
    FRAME_SIZE,
    MAX_SIZE,
    MIN_SIZE,
    STRETCHES,
    cached_overlays,
    cached_png,
)
from skytriage.errors import SkytriageInputError
from skytriage.io.labels import check_label

api = Blueprint("api", __name__, url_prefix="/api")
log = logging.getLogger(__name__)
EXTENSION = "skytriage_dashboard"


def dashboard() -> Dashboard:
    """The :class:`Dashboard` of the running app."""
    return current_app.extensions[EXTENSION]


def json_table(table: pd.DataFrame) -> Response:
    """A DataFrame as a JSON list of row objects (NaN as null, timestamps ISO 8601)."""
    body = table.to_json(orient="records", date_format="iso", date_unit="us", force_ascii=False)
    return current_app.response_class(body, mimetype="application/json")


def json_error(err: HTTPException) -> Response | HTTPException:
    """Error handler of the whole server: JSON bodies under ``/api/``, Dash's pages elsewhere."""
    if not request.path.startswith("/api/"):
        return err
    if err.code is not None and err.code >= 500:
        log.error("%s %s: %s", request.method, request.path, err.description,
                  exc_info=getattr(err, "original_exception", None))
    response = jsonify(error=err.description)
    response.status_code = err.code or 500
    return response


@api.get("/datasets")
def datasets() -> Response:
    """One object per dataset, in table order."""
    return json_table(dashboard().overview())


@api.get("/frames")
def frames() -> Response:
    """Rows of ``frames.parquet`` with their ids, all or those of ``?dataset=NAME``."""
    table = dashboard().data.frames
    name = request.args.get("dataset")
    if name is not None:
        table = table[table["dataset"] == name]
        if table.empty:
            raise NotFound(f"no dataset named {name!r}")
    return json_table(table)


def _row(frame_id: int) -> pd.Series:
    try:
        return dashboard().data.row(frame_id)
    except KeyError as err:
        raise NotFound(err.args[0]) from err


@api.get("/frames/<int:frame_id>")
def frame(frame_id: int) -> Response:
    """One row of ``frames.parquet`` and ``human_labels``: every label given to it."""
    row = _row(frame_id)
    body = json.loads(row.to_json(date_format="iso"))
    body["human_labels"] = json.loads(dashboard().labels_of(row).to_json(
        orient="records", date_format="iso", date_unit="us"))
    return jsonify(body)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {text!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be in {low}..{high}, not {value}")
    return value


@contextmanager
def frame_errors(file: Path) -> Iterator[Path]:
    """Turn a missing (404) or unreadable (422) frame file into an HTTP error."""
    try:
        yield file
    except FileNotFoundError as err:
        raise NotFound(f"{file}: frame file not found") from err
    except (OSError, SkytriageInputError) as err:
        raise UnprocessableEntity(" ".join(str(err).split())) from err


@api.get("/frames/<int:frame_id>/image.png")
def image(frame_id: int) -> Response:
    """The frame as a grayscale PNG, from the disk cache when it was rendered before."""
    _row(frame_id)
    stretch = request.args.get("stretch", STRETCHES[0])
    if stretch not in STRETCHES:
        raise BadRequest(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch!r}")
    size = _int_arg("size", FRAME_SIZE, MIN_SIZE, MAX_SIZE)
    board = dashboard()
    with frame_errors(board.data.file(frame_id)) as file:
        png, hit = cached_png(file, stretch, size, board.data.cache_dir)
    response = send_file(png, mimetype="image/png", etag=True, max_age=0)
    response.headers["X-Skytriage-Cache"] = "hit" if hit else "miss"
    return response


@api.get("/frames/<int:frame_id>/overlays")
def overlays(frame_id: int) -> Response:
    """Streaks and blobs preview detects in the frame (pixels, 0-based, x = column)."""
    _row(frame_id)
    board = dashboard()
    with frame_errors(board.data.file(frame_id)) as file:
        return jsonify(cached_overlays(file, board.data.cache_dir))


def _label_request() -> dict:
    """The checked body of ``POST /api/labels``; BadRequest or NotFound otherwise."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object {path, frame, label, user}")
    fields = {"path": body.get("path"), "frame": body.get("frame"),
              "label": body.get("label"), "user": body.get("user", "anonymous")}
    try:
        check_label(**fields)
    except ValueError as err:
        raise BadRequest(str(err)) from err
    if dashboard().data.find(fields["path"], fields["frame"]) is None:
        raise NotFound(f"no frame {fields['frame']} of {fields['path']!r} in this result")
    return fields


@api.post("/labels")
def add_label() -> tuple[Response, int]:
    """Store one label; 201 and ``{id, path, frame, label, user}``."""
    fields = _label_request()
    return jsonify(id=dashboard().labels.add(**fields), **fields), 201


@api.get("/labels")
def labels() -> Response:
    """Every label, oldest first; with ``?latest=1`` only the newest label of each frame."""
    store = dashboard().labels
    latest = request.args.get("latest", "0").lower() in ("1", "true", "yes")
    return json_table(store.latest() if latest else store.all())


@api.get("/labels.csv")
def labels_csv() -> Response:
    """Every label as a CSV download, written first (atomically) to ``RESULT_DIR/labels.csv``."""
    board = dashboard()
    path = board.labels.to_csv(board.data.result_dir / "labels.csv")
    return send_file(path, mimetype="text/csv", as_attachment=True,
                     download_name="labels.csv", max_age=0)


@api.post("/retrain")
def retrain() -> Response:
    """Retrain with the newest human labels and re-score; the summary of the retraining."""
    try:
        return jsonify(dashboard().retrain())
    except ValueError as err:
        raise BadRequest(str(err)) from err
    except RetrainBusy as err:
        raise Conflict(str(err)) from err
    except (OSError, SkytriageInputError) as err:
        cause = " ".join(f"{type(err).__name__}: {err}".split())
        raise UnprocessableEntity(f"cannot retrain: {cause}") from err


@api.route("/<path:unknown>", methods=["GET", "POST"])
def not_found(unknown: str) -> Response:
    """Any other path under ``/api/``: 404 (instead of Dash's page)."""
    raise NotFound(f"no API endpoint /api/{unknown}")
