"""The page: a header, and three views (overview, dataset, frame) shown one at a time.

All three views stay in the page and are shown or hidden by the URL (``/``,
``/dataset/<name>``, ``/frame/<id>``), so every callback always finds its components.
"""

from __future__ import annotations

import getpass
from urllib.parse import quote

import pandas as pd
from dash import dcc, html

from skytriage.dashboard.data import Dashboard
from skytriage.dashboard.figures import LABEL_COLOURS, PCA_AXES
from skytriage.dashboard.images import STRETCHES, THUMBNAIL_SIZE
from skytriage.io.labels import LABELS

THUMBNAILS_PER_DATASET = 8
HIDDEN = {"display": "none"}
SHOWN = {"display": "block"}


def image_url(frame_id: int, stretch: str, size: int) -> str:
    """URL of a frame's PNG in the JSON API."""
    return f"/api/frames/{frame_id}/image.png?stretch={stretch}&size={size}"


def dataset_path(name: str) -> str:
    """URL path of a dataset view."""
    return f"/dataset/{quote(name, safe='')}"


def label_key(label: str) -> str:
    """The key that gives a label: 1..8 in the order of LABELS, 0 for normal."""
    return str(LABELS.index(label))


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def header(board: Dashboard) -> html.Header:
    """Title, result folder, labeller name, export, retraining, status line."""
    return html.Header(className="top", children=[
        dcc.Link("skytriage", href="/", className="brand", id="home-link"),
        html.Span(str(board.data.result_dir), className="result-dir"),
        html.Label(["labeller ", dcc.Input(id="user", value=_default_user(), type="text",
                                           debounce=True, persistence=True, size="12")]),
        html.A("export labels (CSV)", href="/api/labels.csv", id="export-link",
               download="labels.csv"),
        html.Button("retrain & re-score", id="retrain-button", className="retrain",
                    title="Train the classifier again with the labels given so far, "
                          "then re-score every frame of this result."),
        html.Span(id="status", className="status"),
    ])


def _thumbnail(row: pd.Series) -> dcc.Link:
    caption = f"#{row['frame']} {row['label']} {row['anomaly_score']:.2f}"
    return dcc.Link(href=f"/frame/{row['id']}", className="thumb", children=[
        html.Img(src=image_url(int(row["id"]), STRETCHES[0], THUMBNAIL_SIZE), alt=caption),
        html.Div(caption, className="caption"),
    ])


def overview_body(board: Dashboard) -> list:
    """Counts per dataset and a strip of its most anomalous frames."""
    table = board.overview()
    frames = board.data.frames
    head = html.Tr([html.Th(c) for c in ("dataset", "frames", "anomalies", "labelled",
                                         *LABELS)])
    rows = [html.Tr([html.Td(dcc.Link(r["dataset"], href=dataset_path(r["dataset"]))),
                     *(html.Td(r[c]) for c in ("frames", "anomalies", "labelled", *LABELS))])
            for _, r in table.iterrows()]
    strips = []
    for name in table["dataset"]:
        top = frames[frames["dataset"] == name].nlargest(THUMBNAILS_PER_DATASET, "anomaly_score")
        strips.append(html.Div(className="strip-block", children=[
            html.H3(dcc.Link(name, href=dataset_path(name))),
            html.Div([_thumbnail(r) for _, r in top.iterrows()], className="strip"),
        ]))
    return [html.H2(f"{len(frames)} frames in {len(table)} datasets"),
            html.Table([html.Thead(head), html.Tbody(rows)], className="counts", id="counts"),
            html.H2("Most anomalous frames per dataset"), *strips]


def _choice(label: str, component) -> html.Label:
    return html.Label([label, component], className="choice")


def dataset_view(board: Dashboard) -> html.Div:
    """Feature and score against frame index; scatter of all frames in two features or PCA."""
    features = board.data.features()
    options = [{"label": f, "value": f} for f in ["anomaly_score", *features]]
    axes = [*({"label": v, "value": k} for k, v in PCA_AXES.items()), *options]
    colour = dcc.RadioItems(id="colour-by", value="label", inline=True, options=[
        {"label": "model label", "value": "label"},
        {"label": "human label", "value": "human_label"}])
    return html.Div(id="view-dataset", style=HIDDEN, children=[
        html.Div(className="controls", children=[
            _choice("dataset ", dcc.Dropdown(id="dataset-select", clearable=False,
                                             options=board.data.datasets())),
            _choice("feature ", dcc.Dropdown(id="series-feature", clearable=False,
                                             options=options, value=features[0]
                                             if features else "anomaly_score")),
            _choice("colour ", colour),
        ]),
        dcc.Graph(id="series-graph", config={"displaylogo": False}),
        html.Div(className="controls", children=[
            _choice("x ", dcc.Dropdown(id="scatter-x", clearable=False, options=axes,
                                       value="pca1")),
            _choice("y ", dcc.Dropdown(id="scatter-y", clearable=False, options=axes,
                                       value="pca2")),
            _choice("frames ", dcc.RadioItems(id="scatter-scope", value="dataset", inline=True,
                                              options=[{"label": "this dataset",
                                                        "value": "dataset"},
                                                       {"label": "all datasets",
                                                        "value": "all"}])),
        ]),
        dcc.Graph(id="scatter-graph", config={"displaylogo": False}),
        html.P("Click a point to open its frame.", className="hint"),
    ])


def _label_buttons() -> html.Div:
    """One button per class with its key; keys.js posts the label on a click or key press."""
    return html.Div(className="label-keys", children=[
        html.Button(f"{label_key(label)} {label}", className="label-button",
                    style={"borderColor": LABEL_COLOURS[label]},
                    **{"data-label": label, "data-key": label_key(label)})
        for label in (*LABELS[1:], LABELS[0])])


def frame_view() -> html.Div:
    """The frame with stretch and overlays, its features, previous/next, labelling keys."""
    return html.Div(id="view-frame", style=HIDDEN, children=[
        html.Div(id="frame-title", className="frame-title"),
        html.Div(className="controls", children=[
            dcc.Link("◀ previous", href="/", id="frame-prev", className="nav"),
            dcc.Link("next ▶", href="/", id="frame-next", className="nav"),
            dcc.Link("dataset", href="/", id="frame-back", className="nav"),
            _choice("stretch ", dcc.RadioItems(id="stretch", value=STRETCHES[0], inline=True,
                                               options=list(STRETCHES))),
            _choice("overlays ", dcc.Checklist(id="overlay-toggle", inline=True,
                                               value=["streaks", "blobs"],
                                               options=["streaks", "blobs"])),
        ]),
        _label_buttons(),
        html.Div(className="frame-row", children=[
            dcc.Graph(id="frame-graph", className="frame-graph",
                      config={"scrollZoom": True, "displaylogo": False}),
            html.Div(className="side", children=[
                html.H3("human labels"), html.Ul(id="frame-labels"),
                html.H3("features"), html.Table(id="frame-features", className="features"),
            ]),
        ]),
        html.Pre(id="frame-info", style=HIDDEN),
        html.P("Keys: 1-8 label the frame (0 normal), ← → previous/next; scroll to zoom, "
               "drag to pan, double-click to reset.", className="hint"),
    ])


def page(board: Dashboard) -> html.Div:
    """The whole page, built afresh for each visit (so a retrained table shows at once)."""
    return html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Store(id="label-saved"),
        dcc.Store(id="rescored"),
        header(board),
        html.Main([
            html.Div(id="view-overview", style=SHOWN),
            dataset_view(board),
            frame_view(),
        ]),
    ])
