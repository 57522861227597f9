"""The events report: the event map with every track, and each meteor's light curve and track."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from skytriage.report.html import HtmlReport

#: Meteors shown one by one (the brightest first).
MAX_METEORS = 12
_KIND_COLOURS = {"meteor": "#d62728", "lightning": "#1f77b4", "elve": "#9467bd",
                 "cosmic_ray": "#7f7f7f", "flasher": "#2ca02c"}


def event_map_figure(result) -> plt.Figure:
    """The per-pixel meteor score with each event's position (meteors with their tracks)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.6))
    image = left.imshow(result.event_map, origin="lower", cmap="magma", vmin=0, vmax=1)
    fig.colorbar(image, ax=left, label="meteor score")
    left.set_title("event map")
    stack = np.max(result.cube - result.expected, axis=0)
    lo, hi = np.percentile(stack, [5, 99.5])
    right.imshow(stack, origin="lower", cmap="gray", vmin=lo, vmax=hi)
    right.set_title("max over time of counts above background")
    for _, ev in result.events.iterrows():
        colour = _KIND_COLOURS.get(ev["kind"], "orange")
        right.plot(ev["x"], ev["y"], "o", ms=4, mfc="none", color=colour)
        if ev["kind"] == "meteor" and np.isfinite(ev["speed"]):
            _draw_track(right, ev, result.frame_time, colour)
    handles = [plt.Line2D([], [], marker="o", ls="", mfc="none", color=c, label=k)
               for k, c in _KIND_COLOURS.items()]
    right.legend(handles=handles, fontsize=7, loc="upper right")
    for axis in (left, right):
        axis.set_xlabel("x (px)")
        axis.set_ylabel("y (px)")
    return fig


def _draw_track(axis: plt.Axes, event, frame_time: float, colour: str) -> None:
    """The fitted track from t_start to t_end, as an arrow through the mean position."""
    duration = (event["t_end"] - event["t_start"] + 1) * frame_time
    length = event["speed"] * duration
    angle = np.radians(event["direction"])
    dx, dy = 0.5 * length * np.cos(angle), 0.5 * length * np.sin(angle)
    axis.annotate("", xy=(event["x"] + dx, event["y"] + dy),
                  xytext=(event["x"] - dx, event["y"] - dy),
                  arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})


def meteor_figure(result, event) -> plt.Figure:
    """Light curve (counts above background summed over the event's pixels) and track."""
    cands = result.candidates
    members = cands.features["event"].to_numpy() == event["event"]
    ys, xs, ts = cands.y[members], cands.x[members], cands.t[members]
    pad = 24
    t0 = max(0, int(event["t_start"]) - pad)
    t1 = min(len(result.cube), int(event["t_end"]) + pad + 1)
    residual = result.cube[t0:t1] - result.expected[t0:t1]
    curve = residual[:, ys, xs].sum(axis=1)
    fig, (lc, track) = plt.subplots(1, 2, figsize=(10, 3.4))
    time = np.arange(t0, t1) * result.frame_time
    lc.plot(time, curve, color="k", lw=1)
    lc.axvspan(event["t_start"] * result.frame_time, event["t_end"] * result.frame_time,
               color="#d62728", alpha=0.15)
    lc.set_xlabel("time (s)")
    lc.set_ylabel("counts above background")
    lc.set_title(f"event {event['event']}: light curve over {members.sum()} pixels")
    frames = slice(int(event["t_start"]) - t0, int(event["t_end"]) - t0 + 1)
    stack = residual[frames].max(axis=0)
    track.imshow(stack, origin="lower", cmap="gray")
    points = track.scatter(xs, ys, c=ts * result.frame_time, cmap="viridis", s=14)
    fig.colorbar(points, ax=track, label="peak time (s)")
    if np.isfinite(event["speed"]):
        _draw_track(track, event, result.frame_time, "#d62728")
    half = max(6, int(np.ptp(xs)) + 4, int(np.ptp(ys)) + 4)
    track.set_xlim(event["x"] - half, event["x"] + half)
    track.set_ylim(event["y"] - half, event["y"] + half)
    track.set_title(f"track: {event['speed']:.1f} px/s towards {event['direction']:.0f}°")
    return fig


def events_report(result) -> HtmlReport:
    """The whole report of one cube."""
    report = HtmlReport(f"skytriage events: {result.path}")
    vx, vy = result.velocity
    report.paragraph(f"{len(result.cube)} frames of {result.frame_time * 1000:.2f} ms; ground "
                     f"velocity measured from the data: ({vx:.2f}, {vy:.2f}) px/s; "
                     f"{len(result.candidates)} candidate pixel windows; "
                     f"{len(result.meteors)} meteors among {len(result.events)} events.")
    for note in result.notes:
        report.paragraph(f"Note: {note}")
    report.heading("Event map")
    report.figure(event_map_figure(result), "Left: per-pixel meteor score (event_map.fits). "
                  "Right: brightest residual of every pixel, with the events found.")
    if len(result.events):
        report.heading("Events")
        counts = result.events["kind"].value_counts().rename_axis("kind").reset_index()
        report.table(counts)
        columns = ["event", "kind", "t_start", "t_end", "x", "y", "direction", "speed", "peak",
                   "n_pixels", "score"]
        report.table(result.events[columns].head(200))
    meteors = result.meteors.sort_values("peak", ascending=False).head(MAX_METEORS)
    if len(meteors):
        report.heading("Meteors")
        for _, event in meteors.iterrows():
            report.figure(meteor_figure(result, event),
                          f"event {event['event']}: frames {event['t_start']}-{event['t_end']}, "
                          f"score {event['score']:.2f}")
    return report
