"""Server-side callbacks: routing between the views, the plots, the frame panel.

Labelling itself happens in the browser (``assets/keys.js`` posts to ``/api/labels`` and
puts the answer into the ``label-saved`` store); the callbacks here only redraw.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import dash
import pandas as pd
from dash import Input, Output, html

from skytriage.dashboard.data import Dashboard, pca_embedding
from skytriage.dashboard.figures import (
    UNLABELLED,
    frame_figure,
    overlay_traces,
    scatter_figure,
    series_figure,
)
from skytriage.dashboard.images import FRAME_SIZE, cached_overlays, frame_shape
from skytriage.dashboard.layout import HIDDEN, SHOWN, dataset_path, image_url, overview_body
from skytriage.errors import SkytriageInputError

VIEWS = ("overview", "dataset", "frame")


def parse_pathname(pathname: str | None) -> tuple[str, str | int | None]:
    """``/`` -> overview, ``/dataset/NAME`` -> dataset, ``/frame/ID`` -> frame.

    Returns
    -------
    (str, str or int or None)
        The view and its argument (dataset name, frame id); unknown paths give the overview.
    """
    parts = [unquote(p) for p in (pathname or "/").strip("/").split("/")]
    if len(parts) == 2 and parts[0] == "dataset" and parts[1]:
        return "dataset", parts[1]
    if len(parts) == 2 and parts[0] == "frame" and parts[1].isdigit():
        return "frame", int(parts[1])
    return "overview", None


def _clicked_id(click: dict | None) -> int | None:
    """Frame id of a clicked point (its customdata), if any."""
    points = (click or {}).get("points") or []
    return int(points[0]["customdata"]) if points and "customdata" in points[0] else None


def _route(board: Dashboard, pathname, selected, series_click, scatter_click):
    """Where to go, given what triggered the routing callback."""
    trigger = dash.ctx.triggered_id
    clicked = _clicked_id(series_click if trigger == "series-graph" else scatter_click)
    if trigger in ("series-graph", "scatter-graph") and clicked is not None:
        pathname = f"/frame/{clicked}"
    elif trigger == "dataset-select" and selected:
        pathname = dataset_path(selected)
    view, arg = parse_pathname(pathname)
    if view == "frame" and not 0 <= arg < len(board.data.frames):
        view, arg = "overview", None
    if view == "dataset" and arg not in board.data.datasets():
        view, arg = "overview", None
    return pathname, view, arg


def register(app: dash.Dash, board: Dashboard) -> None:
    """Attach every callback of the page to ``app``."""

    @app.callback(
        Output("url", "pathname"), Output("view-overview", "style"),
        Output("view-dataset", "style"), Output("view-frame", "style"),
        Output("view-overview", "children"), Output("dataset-select", "value"),
        Output("series-graph", "clickData"), Output("scatter-graph", "clickData"),
        Input("url", "pathname"), Input("dataset-select", "value"),
        Input("series-graph", "clickData"), Input("scatter-graph", "clickData"),
        Input("rescored", "data"),
    )
    def route(pathname, selected, series_click, scatter_click, _rescored):
        pathname, view, arg = _route(board, pathname, selected, series_click, scatter_click)
        styles = [SHOWN if view == v else HIDDEN for v in VIEWS]
        overview = overview_body(board) if view == "overview" else dash.no_update
        if view == "dataset":
            dataset = arg
        elif view == "frame":
            dataset = board.data.row(arg)["dataset"]
        else:
            dataset = dash.no_update
        return pathname, *styles, overview, dataset, None, None

    @app.callback(Output("series-graph", "figure"),
                  Input("dataset-select", "value"), Input("series-feature", "value"),
                  Input("colour-by", "value"), Input("label-saved", "data"),
                  Input("rescored", "data"))
    def series(dataset, feature, colour_by, _saved, _rescored):
        if not dataset:
            return dash.no_update
        frames = board.data.frames
        rows = board.with_human_labels(frames[frames["dataset"] == dataset])
        return series_figure(rows, feature, colour_by)

    @app.callback(Output("scatter-graph", "figure"),
                  Input("dataset-select", "value"), Input("scatter-x", "value"),
                  Input("scatter-y", "value"), Input("scatter-scope", "value"),
                  Input("colour-by", "value"), Input("label-saved", "data"),
                  Input("rescored", "data"))
    def scatter(dataset, x, y, scope, colour_by, _saved, _rescored):
        if not dataset:
            return dash.no_update
        frames = board.data.frames
        rows = frames if scope == "all" else frames[frames["dataset"] == dataset]
        rows = board.with_human_labels(rows)
        if "pca1" in (x, y) or "pca2" in (x, y):
            embedding = pca_embedding(rows, board.data.features())
            rows = rows.assign(pca1=embedding[:, 0], pca2=embedding[:, 1])
        return scatter_figure(rows, x, y, colour_by)

    @app.callback(
        Output("frame-graph", "figure"), Output("frame-title", "children"),
        Output("frame-prev", "href"), Output("frame-next", "href"),
        Output("frame-back", "href"), Output("frame-back", "children"),
        Output("frame-features", "children"), Output("frame-info", "children"),
        Input("url", "pathname"), Input("stretch", "value"), Input("overlay-toggle", "value"),
        Input("rescored", "data"),
    )
    def frame_panel(pathname, stretch, show, _rescored):
        view, frame_id = parse_pathname(pathname)
        if view != "frame" or not 0 <= frame_id < len(board.data.frames):
            return (dash.no_update,) * 8
        row = board.data.row(frame_id)
        last = len(board.data.frames) - 1
        try:
            shape, traces = frame_overlays(board, frame_id, show)
        except (OSError, SkytriageInputError) as err:
            return ({}, f"cannot read frame: {err}", *(dash.no_update,) * 6)
        figure = frame_figure(image_url(frame_id, stretch, FRAME_SIZE), shape, traces,
                              revision=str(frame_id))
        title = (f"{row['dataset']} #{row['frame']}: {row['label']} "
                 f"(score {row['anomaly_score']:.2f}) — {row['path']}")
        info = json.dumps({"id": frame_id, "path": row["path"], "frame": int(row["frame"])})
        return (figure, title, f"/frame/{max(frame_id - 1, 0)}",
                f"/frame/{min(frame_id + 1, last)}", dataset_path(row["dataset"]),
                f"dataset {row['dataset']}", feature_rows(board, row), info)

    @app.callback(Output("frame-labels", "children"), Output("status", "children"),
                  Input("url", "pathname"), Input("label-saved", "data"))
    def frame_labels(pathname, saved):
        status = saved_status(saved) if dash.ctx.triggered_id == "label-saved" else ""
        view, frame_id = parse_pathname(pathname)
        if view != "frame" or not 0 <= frame_id < len(board.data.frames):
            return dash.no_update, status
        mine = board.labels_of(board.data.row(frame_id))
        items = [html.Li(f"{r.label} — {r.user}, {r.created_at:%Y-%m-%d %H:%M:%S} UTC")
                 for r in mine.iloc[::-1].itertuples()]
        return items or [html.Li(UNLABELLED)], status

    @app.callback(Output("rescored", "data"), Output("status", "children", allow_duplicate=True),
                  Input("retrain-button", "n_clicks"), prevent_initial_call=True,
                  running=[(Output("retrain-button", "disabled"), True, False),
                           (Output("retrain-button", "children"), "retraining ...",
                            "retrain & re-score")])
    def retrain(_clicks):
        try:
            summary = board.retrain()
        except (ValueError, RuntimeError, OSError, SkytriageInputError) as err:
            return dash.no_update, f"not retrained: {type(err).__name__}: {err}"
        return summary, retrained_status(summary)


def frame_overlays(board: Dashboard, frame_id: int,
                   show: list[str]) -> tuple[tuple[int, int], list]:
    """Shape ``(ny, nx)`` of a frame and the traces of the overlays in ``show``.

    The overlays are computed (or read from the cache) only when one is asked for;
    otherwise the shape comes from the header alone.
    """
    file = board.data.file(frame_id)
    if not show:
        return frame_shape(file), []
    found = cached_overlays(file, board.data.cache_dir)
    return tuple(found["shape"]), overlay_traces(found, show)


def feature_rows(board: Dashboard, row: pd.Series) -> list[html.Tr]:
    """Table rows ``name | value`` of a frame's scores and features."""
    names = ["anomaly_score", "is_anomaly", "label", "labels", *board.data.features()]
    return [html.Tr([html.Th(n), html.Td(_format(row[n]))]) for n in names]


def _format(value) -> str:
    """A feature value for the table: floats with 5 significant digits."""
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def saved_status(saved: dict | None) -> str:
    """One line about the last label the page tried to store."""
    if not saved:
        return ""
    if saved.get("status") != 201:
        return f"label not stored: {saved.get('error', 'unknown error')}"
    return f"stored {saved['label']} for frame {saved['frame']} of {saved['path']} " \
           f"({saved['user']})"


def retrained_status(summary: dict) -> str:
    """One line about a finished retraining."""
    return (f"retrained on {summary['training_frames']} frames "
            f"({summary['hand_labelled']} labelled here); "
            f"{summary['anomalies']} anomalies after re-scoring")
