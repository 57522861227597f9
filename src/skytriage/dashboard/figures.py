"""Plotly figures of the dashboard: feature series, feature scatter, and the frame itself.

Every point carries its frame id as ``customdata`` so that a click opens the frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from skytriage.dashboard.data import TIME_FEATURE
from skytriage.io.labels import LABELS

LABEL_COLOURS = dict(zip(LABELS, ("#9e9e9e", "#d62728", "#ff7f0e", "#8c564b", "#1f77b4",
                                  "#2ca02c", "#9467bd", "#bcbd22", "#e377c2"), strict=True))
UNLABELLED = "unlabelled"
PCA_AXES = {"pca1": "PCA component 1", "pca2": "PCA component 2"}
STREAK_COLOUR, BLOB_COLOUR = "#ff3030", "#30c0ff"
_MARGIN = {"l": 60, "r": 20, "t": 30, "b": 40}


def _values(frames: pd.DataFrame, column: str) -> pd.Series:
    """A column for plotting: dates parsed, everything else as it is."""
    if column == TIME_FEATURE:
        return pd.to_datetime(frames[column], errors="coerce", utc=True)
    return frames[column]


def _by_label(frames: pd.DataFrame, colour_by: str) -> list[tuple[str, pd.DataFrame]]:
    """Groups of rows per label, in the order of LABELS, unlabelled last."""
    keys = frames[colour_by].fillna(UNLABELLED)
    order = [*LABELS, UNLABELLED]
    return [(name, frames[keys == name]) for name in order if (keys == name).any()]


def series_figure(frames: pd.DataFrame, feature: str, colour_by: str = "label") -> go.Figure:
    """A feature and the anomaly score of one dataset against frame index.

    Parameters
    ----------
    frames : DataFrame
        Rows of one dataset, with ``id``, ``frame``, ``anomaly_score`` and ``feature``.
    feature : str
        Column for the top panel.
    colour_by : str
        Column whose label names colour the points (``label`` or ``human_label``).
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for row, column in ((1, feature), (2, "anomaly_score")):
        fig.add_trace(go.Scatter(x=frames["frame"], y=_values(frames, column), mode="lines",
                                 line={"color": "#c8c8c8", "width": 1}, hoverinfo="skip",
                                 showlegend=False), row=row, col=1)
        for name, group in _by_label(frames, colour_by):
            fig.add_trace(go.Scatter(
                x=group["frame"], y=_values(group, column), mode="markers", name=name,
                legendgroup=name, showlegend=row == 1, customdata=group["id"].tolist(),
                marker={"color": LABEL_COLOURS.get(name, "#000000"), "size": 7},
                hovertemplate=f"frame %{{x}}<br>{column} %{{y}}<br>{name}<extra></extra>",
            ), row=row, col=1)
        fig.update_yaxes(title_text=column, row=row, col=1)
    fig.update_xaxes(title_text="frame", row=2, col=1)
    fig.update_layout(margin=_MARGIN, height=460, clickmode="event", uirevision=feature,
                      legend={"orientation": "h", "y": 1.08})
    return fig


def scatter_figure(frames: pd.DataFrame, x: str, y: str, colour_by: str = "label") -> go.Figure:
    """Every frame in two features (or PCA components ``pca1``/``pca2``), coloured by label."""
    fig = go.Figure()
    for name, group in _by_label(frames, colour_by):
        fig.add_trace(go.Scatter(
            x=_values(group, x), y=_values(group, y), mode="markers", name=name,
            customdata=group["id"].tolist(),
            text=group["dataset"] + " #" + group["frame"].astype(str),
            marker={"color": LABEL_COLOURS.get(name, "#000000"), "size": 7, "opacity": 0.85},
            hovertemplate="%{text}<br>" + name + "<extra></extra>"))
    fig.update_layout(margin=_MARGIN, height=460, clickmode="event",
                      xaxis_title=PCA_AXES.get(x, x), yaxis_title=PCA_AXES.get(y, y),
                      legend={"orientation": "h", "y": 1.08})
    return fig


def _ellipse(x: float, y: float, fwhm: float, ellipticity: float, theta_deg: float,
             points: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Outline of a blob: semi-major axis = FWHM, semi-minor = FWHM (1 - ellipticity)."""
    t = np.linspace(0, 2 * np.pi, points)
    a, b = fwhm, fwhm * (1 - ellipticity)
    theta = np.deg2rad(theta_deg)
    ex, ey = a * np.cos(t), b * np.sin(t)
    return (x + ex * np.cos(theta) - ey * np.sin(theta),
            y + ex * np.sin(theta) + ey * np.cos(theta))


def _gapped(segments: list[np.ndarray | list]) -> list[float | None]:
    """Concatenate line pieces with ``None`` between them (one Plotly trace, many lines)."""
    joined: list[float | None] = []
    for piece in segments:
        joined.extend([*map(float, piece), None])
    return joined


def overlay_traces(overlays: dict, show: list[str]) -> list[go.Scatter]:
    """Traces of the detected streaks (lines) and blobs (ellipses) in pixel coordinates.

    Parameters
    ----------
    overlays : dict
        ``streaks``: list of ``[x0, y0, x1, y1]``; ``blobs``: list of
        ``[x, y, fwhm, ellipticity, theta_deg]`` (pixels, degrees).
    show : list of str
        Which of ``streaks`` and ``blobs`` to draw.
    """
    traces = []
    streaks = overlays.get("streaks") or []
    if "streaks" in show and streaks:
        traces.append(go.Scatter(
            x=_gapped([[s[0], s[2]] for s in streaks]), y=_gapped([[s[1], s[3]] for s in streaks]),
            mode="lines", name="streaks", line={"color": STREAK_COLOUR, "width": 1.5},
            opacity=0.7, hoverinfo="skip"))
    blobs = overlays.get("blobs") or []
    if "blobs" in show and blobs:
        outlines = [_ellipse(*b[:5]) for b in blobs]
        traces.append(go.Scatter(
            x=_gapped([o[0] for o in outlines]), y=_gapped([o[1] for o in outlines]),
            mode="lines", name="blobs", line={"color": BLOB_COLOUR, "width": 1},
            opacity=0.8, hoverinfo="skip"))
    return traces


def frame_figure(image_url: str, shape: tuple[int, int], traces: list[go.Scatter],
                 revision: str) -> go.Figure:
    """The frame as a picture in pixel coordinates (x = column, y = row, y up), zoomable.

    Parameters
    ----------
    image_url : str
        URL of the PNG (y up, see :func:`skytriage.dashboard.images.render_png`).
    shape : (int, int)
        ``(ny, nx)`` of the frame in pixels.
    traces : list of plotly traces
        Overlays in pixel coordinates.
    revision : str
        Zoom and pan are kept while this stays the same (same frame, other stretch).
    """
    ny, nx = shape
    fig = go.Figure(traces)
    fig.add_layout_image(source=image_url, xref="x", yref="y", x=-0.5, y=ny - 0.5,
                         sizex=nx, sizey=ny, sizing="stretch", layer="below")
    fig.update_xaxes(range=[-0.5, nx - 0.5], showgrid=False, zeroline=False, constrain="domain",
                     title_text="x (column)")
    fig.update_yaxes(range=[-0.5, ny - 0.5], showgrid=False, zeroline=False, scaleanchor="x",
                     constrain="domain", title_text="y (row)")
    fig.update_layout(margin=_MARGIN, height=640, dragmode="pan", uirevision=revision,
                      plot_bgcolor="#000000", legend={"orientation": "h", "y": 1.04})
    return fig
