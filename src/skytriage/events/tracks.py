"""Candidates grouped into events in space and time, and each event's track.

Two candidates belong to one event when their pixels touch (8-connectivity), their peaks
lie within :data:`LINK_FRAMES` frames, and the frames where each is lit (smoothed z >= 2
around its peak) overlap or nearly (:data:`LINK_GAP`). With the pixel scores, the
meteor-like candidates (score >= :data:`METEOR_LIKE`) and the others are first grouped
apart; a group of others is then joined to the meteor-like ones it touches only when
none of its candidates is clearly not a meteor (< :data:`NOT_METEOR`). So a meteor that
passes a flasher or crosses a lightning flash stays an event of its own instead of
vanishing into the larger one, while its own faint edges stay with it. A meteor drifting
at 2 px/s lights each pixel for ~20 frames and its neighbour ~12 frames later, so it stays
one event; lightning lights many pixels in the same frames. The track is a weighted
straight-line fit of the candidates' positions against their peak frames: its slope is
the apparent velocity, whose direction (degrees from +x towards +y) and speed (px/s) the
event list gives, and the spread about it says how straight the track is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from skytriage.events.features import Candidates

#: Background counts at pixel-frames ``(t, y, x)`` (broadcast ndarrays) -> ndarray.
ExpectedAt = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

LINK_FRAMES = 16
LINK_GAP = 3
#: Pixel score of a meteor-like candidate, and below which a candidate is clearly not one.
METEOR_LIKE = 0.5
NOT_METEOR = 0.05
#: Smoothed significance that counts a frame as lit, around a candidate's peak.
RUN_Z = 2.0

EVENT_FEATURES = (
    "n_pixels", "duration", "score_max", "score_mean", "score_top3", "peak_z", "log_peak",
    "track_speed", "relative_speed", "straightness", "extent", "lit_in_frame", "single_frame",
    "second_peak", "width", "n_times", "time_spread",
)


def lit_runs(windows: np.ndarray, t: np.ndarray, threshold: float = RUN_Z
             ) -> tuple[np.ndarray, np.ndarray]:
    """First and last frame of the run around each peak where smoothed z >= ``threshold``."""
    ws = windows.copy()
    ws[:, 1:] += windows[:, :-1]
    ws[:, :-1] += windows[:, 1:]
    lit = ws * np.float32(1 / np.sqrt(3)) >= threshold
    centre = windows.shape[1] // 2

    def run(flags: np.ndarray) -> np.ndarray:
        broken = ~flags
        return np.where(broken.any(axis=1), broken.argmax(axis=1), flags.shape[1])

    before = np.maximum(run(lit[:, centre::-1]), 1)
    after = np.maximum(run(lit[:, centre:]), 1)
    return t - (before - 1), t + (after - 1)


def group(cands: Candidates, scores: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event label of every candidate, and its lit run.

    Parameters
    ----------
    cands : Candidates
    scores : ndarray, shape (n,), optional
        Meteor probability of each candidate; when given, meteor-like and other candidates
        are linked only as the module's docstring says.

    Returns
    -------
    (labels, t_lo, t_hi) : ndarrays of int64, shape (n,)
        ``labels`` numbers events 0..m-1 in order of their first frame.
    """
    n = len(cands)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    t_lo, t_hi = lit_runs(cands.windows, cands.t)
    i, j = touching_pairs(cands.x, cands.y, cands.t, LINK_FRAMES)
    if len(i):
        close = (t_lo[i] <= t_hi[j] + LINK_GAP) & (t_lo[j] <= t_hi[i] + LINK_GAP)
        i, j = i[close], j[close]
        if scores is not None:
            keep = _links_across_scores(i, j, np.asarray(scores), n)
            i, j = i[keep], j[keep]
    else:
        i = j = np.zeros(0, np.int64)
    labels = _components(i, j, n)
    first = np.full(int(labels.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, labels, t_lo)
    order = np.argsort(first, kind="stable")
    renumber = np.empty(len(order), np.int64)
    renumber[order] = np.arange(len(order))
    return renumber[labels], t_lo, t_hi


def touching_pairs(x: np.ndarray, y: np.ndarray, t: np.ndarray, max_dt: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of points whose pixels touch (8-connectivity, or the same pixel) and whose
    frames differ by at most ``max_dt``.

    Parameters
    ----------
    x, y, t : ndarrays of int, shape (n,)
        Pixel and frame of each point.
    max_dt : int
        Largest frame difference, frames.

    Returns
    -------
    (i, j) : ndarrays of int64, shape (m,)
        Each unordered pair once.
    """
    x, y, t = (np.asarray(v, np.int64) for v in (x, y, t))
    width = int(x.max()) + 3 if len(x) else 1  # x + 1 + dx never reaches the next row
    pixel = (y + 1) * width + (x + 1)
    time = t - t.min() + max_dt + 1 if len(t) else t  # keys of t - max_dt stay positive
    span = int(time.max()) + max_dt + 2 if len(t) else 1
    order = np.argsort(pixel * span + time, kind="stable")
    keys = (pixel * span + time)[order]
    points = np.arange(len(x))
    pairs_i, pairs_j = [], []
    for dy, dx in ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1)):
        base = (pixel + dy * width + dx) * span + time
        lo = np.searchsorted(keys, base - max_dt, side="left")
        hi = np.searchsorted(keys, base + max_dt, side="right")
        counts = hi - lo
        i = np.repeat(points, counts)
        j = order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())]
        keep = i < j if (dy, dx) == (0, 0) else np.ones(len(i), bool)
        pairs_i.append(i[keep])
        pairs_j.append(j[keep])
    return np.concatenate(pairs_i), np.concatenate(pairs_j)


def _components(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Connected component of each of ``n`` nodes linked by the pairs (i, j)."""
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _links_across_scores(i: np.ndarray, j: np.ndarray, scores: np.ndarray, n: int
                         ) -> np.ndarray:
    """Which links (i, j) to keep: those within the meteor-like candidates or within the
    others, and those from a group of others without a clear non-meteor to a meteor-like
    candidate."""
    like = scores >= METEOR_LIKE
    same = like[i] == like[j]
    groups = _components(i[same], j[same], n)
    lowest = np.full(n, np.inf)
    np.minimum.at(lowest, groups, scores)
    other_end = np.where(like[i], j, i)
    return same | (lowest[groups[other_end]] >= NOT_METEOR)


def fit_tracks(label: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray,
               weight: np.ndarray, n: int, frame_time: float,
               t_lo: np.ndarray | None = None, t_hi: np.ndarray | None = None) -> pd.DataFrame:
    """Weighted straight-line tracks of labelled points, as a table
    (:func:`track_columns`)."""
    return pd.DataFrame(track_columns(label, t, x, y, weight, n, frame_time, t_lo, t_hi))


def track_columns(label: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray,
                  weight: np.ndarray, n: int, frame_time: float,
                  t_lo: np.ndarray | None = None, t_hi: np.ndarray | None = None
                  ) -> dict[str, np.ndarray]:
    """Weighted straight-line tracks of labelled points, all events at once.

    Parameters
    ----------
    label : ndarray of int, shape (m,)
        Event of each point, 0..n-1.
    t, x, y : ndarrays, shape (m,)
        Frame and pixel of each point.
    weight : ndarray, shape (m,)
        Positive weights (counts above the background).
    n : int
        Number of events.
    frame_time : float
        Seconds per frame.
    t_lo, t_hi : ndarrays, shape (m,), optional
        First and last frame each point covers (default ``t``).

    Returns
    -------
    dict of name -> ndarray, shape (n,)
        ``event, t_start, t_end, x, y, direction, speed, peak, track_speed,
        straightness``: mean position (px), direction (degrees from +x towards +y) and
        speed (px/s; NaN when every point has the same frame), the largest weight, the
        speed in px/frame (0 when not moving) and the rms distance from the line (px).
    """
    t, x, y = (np.asarray(v, np.float64) for v in (t, x, y))
    w = np.asarray(weight, np.float64)

    def mean(v: np.ndarray) -> np.ndarray:
        return np.bincount(label, w * v, minlength=n) / total

    total = np.bincount(label, w, minlength=n)
    mt, mx, my = mean(t), mean(x), mean(y)
    var_t = mean(t * t) - mt**2
    cov_x, cov_y = mean(t * x) - mt * mx, mean(t * y) - mt * my
    var_xy = mean(x * x) - mx**2 + mean(y * y) - my**2
    moving = var_t > 1e-6
    safe = np.where(moving, var_t, 1.0)
    vx, vy = np.where(moving, cov_x / safe, np.nan), np.where(moving, cov_y / safe, np.nan)
    explained = np.where(moving, (cov_x**2 + cov_y**2) / safe, 0.0)
    start = np.full(n, np.iinfo(np.int64).max)
    stop = np.full(n, -1)
    np.minimum.at(start, label, (t if t_lo is None else t_lo).astype(np.int64))
    np.maximum.at(stop, label, (t if t_hi is None else t_hi).astype(np.int64))
    peak = np.zeros(n)
    np.maximum.at(peak, label, w)
    speed = np.hypot(vx, vy)
    return {
        "event": np.arange(n), "t_start": start, "t_end": stop, "x": mx, "y": my,
        "direction": np.degrees(np.arctan2(vy, vx)) % 360, "speed": speed / frame_time,
        "peak": peak, "track_speed": np.nan_to_num(speed),
        "straightness": np.sqrt(np.maximum(var_xy - explained, 0)),
    }


class Groups:
    """Per-label statistics of values, every label 0..n-1 present at least once.

    Parameters
    ----------
    labels : ndarray of int, shape (m,)
    n : int
        Number of labels.
    """

    def __init__(self, labels: np.ndarray, n: int):
        self.labels = labels
        self.count = np.bincount(labels, minlength=n)
        self.starts = np.cumsum(self.count) - self.count

    def _sorted(self, values: np.ndarray) -> np.ndarray:
        """Values ordered by label, then by value."""
        return values[np.lexsort((values, self.labels))]

    def max(self, values: np.ndarray) -> np.ndarray:
        return self._sorted(values)[self.starts + self.count - 1]

    def span(self, values: np.ndarray) -> np.ndarray:
        ordered = self._sorted(values)
        return ordered[self.starts + self.count - 1] - ordered[self.starts]

    def mean(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.labels, values, minlength=len(self.count)) / self.count

    def median(self, values: np.ndarray) -> np.ndarray:
        ordered = self._sorted(values).astype(np.float64)
        low = ordered[self.starts + (self.count - 1) // 2]
        high = ordered[self.starts + self.count // 2]
        return 0.5 * (low + high)

    def top_mean(self, values: np.ndarray, k: int) -> np.ndarray:
        """Mean of the ``k`` largest values of each label (all when fewer)."""
        order = np.lexsort((-values, self.labels))
        rank = np.arange(len(order)) - self.starts[self.labels[order]]
        top = rank < k
        kept = np.bincount(self.labels[order][top], values[order][top], len(self.count))
        return kept / np.minimum(self.count, k)


def distinct_per_label(label: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct ``key`` values (non-negative ints) per label."""
    span = int(key.max()) + 1 if len(key) else 1
    pairs = np.unique(label.astype(np.int64) * span + key)
    return np.bincount(pairs // span, minlength=n)


def event_table(cands: Candidates, scores: np.ndarray, labels: np.ndarray, t_lo: np.ndarray,
                t_hi: np.ndarray, residual_peak: np.ndarray, frame_time: float,
                ground_velocity: tuple[float, float]) -> pd.DataFrame:
    """One row per event: position, time, track and the features of the event classifier.

    Parameters
    ----------
    cands : Candidates
    scores : ndarray, shape (n,)
        Meteor probability of each candidate.
    labels, t_lo, t_hi : ndarrays, shape (n,)
        From :func:`group`.
    residual_peak : ndarray, shape (n,)
        Counts above the background at each candidate's peak.
    frame_time : float
        Seconds per frame.
    ground_velocity : (float, float)
        Ground motion (vx, vy) in px per frame.

    Returns
    -------
    pandas.DataFrame
        ``event, t_start, t_end, x, y, direction, speed, peak`` and
        :data:`EVENT_FEATURES`; direction in degrees, speed in px/s, peak in counts per
        frame above the background.
    """
    n = int(labels.max()) + 1 if len(labels) else 0
    table = track_columns(labels, cands.t, cands.x, cands.y, np.maximum(residual_peak, 1e-3),
                          n, frame_time, t_lo, t_hi)
    vx = np.cos(np.radians(table["direction"])) * table["track_speed"]
    vy = np.sin(np.radians(table["direction"])) * table["track_speed"]
    table["relative_speed"] = np.nan_to_num(np.hypot(vx - ground_velocity[0],
                                                     vy - ground_velocity[1]))
    f = cands.features
    groups = Groups(labels, n)
    table["n_pixels"] = groups.count
    table["duration"] = (table["t_end"] - table["t_start"] + 1).astype(float)
    table["score_max"] = groups.max(scores)
    table["score_mean"] = groups.mean(scores)
    table["score_top3"] = groups.top_mean(scores, 3)
    table["peak_z"] = groups.max(f["peak"].to_numpy())
    table["lit_in_frame"] = groups.max(f["lit_in_frame"].to_numpy())
    for column in ("single_frame", "second_peak", "width"):
        table[column] = groups.median(f[column].to_numpy())
    table["log_peak"] = np.log10(np.maximum(table["peak"], 0.1))
    table["extent"] = (np.maximum(groups.span(cands.x), groups.span(cands.y)) + 1).astype(float)
    table["n_times"] = distinct_per_label(labels, cands.t, n).astype(float)
    table["time_spread"] = groups.span(cands.t).astype(float)
    return pd.DataFrame(table)


def centroid_velocities(cube: np.ndarray, expected_at: ExpectedAt, t_start: np.ndarray,
                        t_end: np.ndarray, event: np.ndarray, pixel: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Velocity (px/frame) of each event's light centroid over its frames, all at once.

    Each frame's centroid weighs the event's pixels by their counts more than 2 sigma above
    the background (``expected_at(t, y, x)``, counts); a straight line is fitted to the
    centroids, weighted by that light. Unlike the fit of the pixels' peak times, it is not
    biased by a rising or fading light curve.

    Parameters
    ----------
    cube : ndarray, shape (T, ny, nx)
        Counts.
    expected_at : callable
        Background counts at pixel-frames.
    t_start, t_end : ndarrays of int, shape (m,)
        First and last frame of each event.
    event : ndarray of int, shape (k,)
        Event (0..m-1) of each of the events' pixels; each (event, pixel) once.
    pixel : ndarray of int, shape (k,)
        Flat pixel index ``y * nx + x``.

    Returns
    -------
    (vx, vy) : ndarrays of float64, shape (m,)
        NaN for an event with fewer than two lit frames or all of them in one frame.
    """
    m, nx = len(t_start), cube.shape[2]
    n_frames = np.asarray(t_end) - np.asarray(t_start) + 1
    # one row per (event, frame), one element per (event, frame, pixel)
    row_event = np.repeat(np.arange(m), n_frames)
    row_t = (np.arange(len(row_event)) - np.repeat(np.cumsum(n_frames) - n_frames, n_frames)
             + np.repeat(t_start, n_frames))
    pixels_of = np.bincount(event, minlength=m)
    first_pixel = np.cumsum(pixels_of) - pixels_of
    order = np.argsort(event, kind="stable")
    per_row = pixels_of[row_event]
    row = np.repeat(np.arange(len(row_event)), per_row)
    within = np.arange(len(row)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    flat = pixel[order][first_pixel[row_event[row]] + within]
    t, y, x = row_t[row], flat // nx, flat % nx
    level = expected_at(t, y, x)
    light = np.maximum(cube[t, y, x] - level - 2 * np.sqrt(np.maximum(level, 1)), 0)
    total = np.bincount(row, light, minlength=len(row_event))
    lit = total > 0
    safe = np.where(lit, total, 1)
    cx = np.bincount(row, light * x, minlength=len(row_event)) / safe
    cy = np.bincount(row, light * y, minlength=len(row_event)) / safe
    weight = total / np.maximum(np.bincount(row_event, total, minlength=m), 1e-30)[row_event]

    def mean(v: np.ndarray) -> np.ndarray:
        return np.bincount(row_event, weight * v, minlength=m)

    tt = row_t.astype(np.float64)
    dt = tt - mean(tt)[row_event]
    var_t = mean(dt * dt)
    valid = (np.bincount(row_event, lit, minlength=m) >= 2) & (var_t > 0)
    safe_var = np.where(valid, var_t, 1)
    vx = np.where(valid, mean(dt * (cx - mean(cx)[row_event])) / safe_var, np.nan)
    vy = np.where(valid, mean(dt * (cy - mean(cy)[row_event])) / safe_var, np.nan)
    return vx, vy


def refine_tracks(events: pd.DataFrame, cands: Candidates, cube: np.ndarray,
                  expected_at: ExpectedAt, frame_time: float, min_pixels: int = 3) -> None:
    """Replace direction and speed of events with ``min_pixels`` or more pixels by those of
    :func:`centroid_velocities` (in place)."""
    chosen = np.flatnonzero(events["n_pixels"].to_numpy() >= min_pixels)
    if len(chosen) == 0:
        return
    slot = np.full(int(cands.features["event"].max()) + 1, -1)
    slot[events["event"].to_numpy()[chosen]] = np.arange(len(chosen))
    member = slot[cands.features["event"].to_numpy()]
    inside = member >= 0
    key = np.unique(member[inside] * cube.shape[1] * cube.shape[2]
                    + cands.y[inside] * cube.shape[2] + cands.x[inside])
    event, pixel = np.divmod(key, cube.shape[1] * cube.shape[2])
    vx, vy = centroid_velocities(cube, expected_at, events["t_start"].to_numpy()[chosen],
                                 events["t_end"].to_numpy()[chosen], event, pixel)
    found = np.isfinite(vx)
    direction = events["direction"].to_numpy(np.float64).copy()
    speed = events["speed"].to_numpy(np.float64).copy()
    direction[chosen[found]] = np.degrees(np.arctan2(vy[found], vx[found])) % 360
    speed[chosen[found]] = np.hypot(vx[found], vy[found]) / frame_time
    events["direction"] = direction
    events["speed"] = speed
