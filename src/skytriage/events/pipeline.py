"""``skytriage.events.run``: from a cube of counts to an event map and an event list.

1. Check the cube (axis order, length, NaN or empty frames, gaps in time).
2. Model the sliding background (:mod:`~skytriage.events.background`), the ground's
   velocity measured from the data.
3. Find the candidate pixel windows and their features (:mod:`~skytriage.events.features`)
   and score each with the pixel classifier.
4. Group the candidates into events, fit their tracks (:mod:`~skytriage.events.tracks`)
   and name each event with the event classifier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

from skytriage.errors import SkytriageInputError
from skytriage.events.background import Background, background_model
from skytriage.events.features import (
    CACHE_FRAMES,
    WINDOW,
    Candidates,
    candidates,
    concat,
    find_peaks,
    smooth3,
)
from skytriage.events.model import EVENT_KINDS, EventsModel
from skytriage.events.simulate import FRAME_TIME
from skytriage.events.tracks import METEOR_LIKE, event_table, group, refine_tracks
from skytriage.io import read_cube, write_ecsv, write_fits

#: Fewest frames a cube (or a stretch between gaps) needs: one classification window.
MIN_FRAMES = WINDOW
#: Time between frames, in frame times, beyond which a gap splits the cube.
GAP_FACTOR = 1.5
EVENT_COLUMNS = ["event", "kind", "t_start", "t_end", "x", "y", "direction", "speed", "peak",
                 "n_pixels", "score", "duration_s"]


@dataclass
class Analysis:
    """What the pipeline measured on one stretch of frames (before any model).

    Attributes
    ----------
    background : Background
    candidates : Candidates
        With ``t`` in frames of the whole cube.
    residual_peak : ndarray of float32, shape (n,)
        Counts above the background at each candidate's peak.
    """

    background: Background
    candidates: Candidates
    residual_peak: np.ndarray


@dataclass
class EventsResult:
    """Result of :func:`run` on one cube.

    Attributes
    ----------
    event_map : ndarray of float32, shape (ny, nx)
        Per-pixel meteor score: the highest meteor probability of the pixel's windows.
    events : pandas.DataFrame
        :data:`EVENT_COLUMNS` plus ``p_<kind>`` and the event features.
    candidates : Candidates
        Every candidate window, with ``score`` and ``event`` columns added to features.
    velocity : (float, float)
        Ground velocity measured from the data, px/s.
    frame_time : float
        Seconds per frame.
    cube : ndarray of float32, shape (T, ny, nx)
        The counts (NaN frames filled), for the report.
    backgrounds : list of (int, int, Background)
        The background model of each stretch ``[start, stop)`` of frames analysed.
    path : str
        The input, or ``"<array>"``.
    notes : list of str
        What was repaired or skipped (NaN frames, gaps).
    """

    event_map: np.ndarray
    events: pd.DataFrame
    candidates: Candidates
    velocity: tuple[float, float]
    frame_time: float
    cube: np.ndarray
    backgrounds: list[tuple[int, int, Background]]
    path: str = "<array>"
    notes: list[str] = field(default_factory=list)

    @cached_property
    def expected(self) -> np.ndarray:
        """The background model, float32 (T, ny, nx); 0 in frames not analysed."""
        return expected_cube(self.backgrounds, self.cube.shape)

    @property
    def meteors(self) -> pd.DataFrame:
        """The events of kind meteor."""
        return self.events[self.events["kind"] == "meteor"]

    def write(self, out_dir: str | os.PathLike, report: bool = True) -> dict[str, Path]:
        """Write event_map.fits, events.ecsv and (by default) report.html into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        header = fits.Header()
        header["BUNIT"] = ("", "meteor score 0..1: highest of the pixel's windows")
        header["TIMEDEL"] = (self.frame_time, "[s] frame time of the input cube")
        header["GROUNDVX"] = (round(self.velocity[0], 4), "[px/s] ground velocity, x")
        header["GROUNDVY"] = (round(self.velocity[1], 4), "[px/s] ground velocity, y")
        provenance = {"command": "skytriage events", "parameters": {"input": self.path}}
        written = {"event_map": write_fits(out / "event_map.fits", self.event_map, header,
                                           provenance=provenance),
                   "events": write_ecsv(out / "events.ecsv", self.events)}
        if report:
            from skytriage.events.report import events_report

            written["report"] = events_report(self).write(out / "report.html")
        return written


def check_cube(data: np.ndarray, path: str) -> np.ndarray:
    """A (T, ny, nx) cube, or an input error that says what is wrong and how to fix it."""
    if data.ndim != 3:
        raise SkytriageInputError(path, f"expected a cube (t, y, x), found shape {data.shape}")
    t, a, b = data.shape
    if a == t and b > a:
        raise SkytriageInputError(
            path, f"shape {data.shape} looks like (y, x, t): put time first, e.g. "
                  "numpy.moveaxis(cube, -1, 0), and write the cube as (t, y, x)")
    if b == t and a > b:
        raise SkytriageInputError(
            path, f"shape {data.shape} looks like (y, t, x): put time first, e.g. "
                  "numpy.moveaxis(cube, 1, 0), and write the cube as (t, y, x)")
    if t < MIN_FRAMES:
        raise SkytriageInputError(
            path, f"{t} frame{'s' if t != 1 else ''}: a cube needs at least {MIN_FRAMES} "
                  f"frames (one {WINDOW}-frame window) to tell an event from the background")
    return data


def bad_frames(cube: np.ndarray) -> np.ndarray:
    """Frames with non-finite pixels or no signal at all (dropped frames), bool (T,)."""
    with np.errstate(invalid="ignore"):
        highest, lowest = cube.max(axis=(1, 2)), cube.min(axis=(1, 2))  # NaN propagates
    finite = np.isfinite(highest) & np.isfinite(lowest)
    return ~finite | ((highest == 0) & (lowest == 0))


def expected_cube(backgrounds: list[tuple[int, int, Background]], shape: tuple[int, ...]
                  ) -> np.ndarray:
    """Background counts of every frame from the stretches' models, float32 ``shape``."""
    out = np.zeros(shape, np.float32)
    for start, stop, background in backgrounds:
        out[start:stop] = background.expected(0, stop - start)
    return out


def expected_at(backgrounds: list[tuple[int, int, Background]], t: np.ndarray, y: np.ndarray,
                x: np.ndarray) -> np.ndarray:
    """Background counts at pixel-frames (t, y, x) of the whole cube, float32 (same shape)."""
    t, y, x = np.broadcast_arrays(t, y, x)
    if len(backgrounds) == 1 and backgrounds[0][0] == 0:
        return backgrounds[0][2].expected_at(t, y, x)
    out = np.zeros(t.shape, np.float32)
    for start, stop, background in backgrounds:
        inside = (t >= start) & (t < stop)
        out[inside] = background.expected_at(t[inside] - start, y[inside], x[inside])
    return out


def repair(cube: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Bad frames replaced by the nearest good frame (they can then hold no event)."""
    good = np.flatnonzero(~bad)
    nearest = good[np.clip(np.searchsorted(good, np.arange(len(cube))), 0, len(good) - 1)]
    previous = good[np.clip(np.searchsorted(good, np.arange(len(cube))) - 1, 0, len(good) - 1)]
    closer = np.abs(previous - np.arange(len(cube))) < np.abs(nearest - np.arange(len(cube)))
    source = np.where(bad, np.where(closer, previous, nearest), np.arange(len(cube)))
    return cube[source]


def segments(frame_times: np.ndarray | None, n_frames: int, frame_time: float
             ) -> list[tuple[int, int]]:
    """Stretches ``[start, stop)`` of frames without gaps in time (all when no times)."""
    if frame_times is None:
        return [(0, n_frames)]
    steps = np.diff(frame_times)
    cuts = np.flatnonzero(steps > GAP_FACTOR * frame_time) + 1
    edges = [0, *cuts.tolist(), n_frames]
    return list(zip(edges[:-1], edges[1:], strict=True))


def analyse(cube: np.ndarray, bad: np.ndarray | None = None) -> Analysis:
    """Background, significance and candidates of one stretch of frames without gaps.

    Parameters
    ----------
    cube : ndarray of float32, shape (T, ny, nx)
        Counts; bad frames already repaired.
    bad : ndarray of bool, shape (T,), optional
        Repaired frames: no candidate peaks in them.

    Returns
    -------
    Analysis
    """
    background = background_model(cube)
    z = np.empty_like(cube)
    for start in range(0, len(cube), CACHE_FRAMES):
        stop = min(start + CACHE_FRAMES, len(cube))
        background.significance(cube, start, stop, out=z[start:stop])
    if bad is not None and bad.any():
        z[bad] = 0
    zs = smooth3(z)
    t, y, x = find_peaks(zs)
    residual_peak = cube[t, y, x] - background.expected_at(t, y, x)
    return Analysis(background, candidates(z, zs, t, y, x, residual_peak), residual_peak)


def score_events(analysis: Analysis, model: EventsModel, frame_time: float
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """Meteor probability of every candidate, and the event table with kinds.

    Returns
    -------
    (scores, events) : ndarray of float32 (n,), pandas.DataFrame
    """
    cands = analysis.candidates
    scores = model.pixels.predict_proba(cands)
    labels, t_lo, t_hi = group(cands, scores)
    events = event_table(cands, scores, labels, t_lo, t_hi, analysis.residual_peak, frame_time,
                         analysis.background.velocity)
    proba = model.event_proba(events)
    p_meteor = proba["p_meteor"].to_numpy()
    kinds = np.asarray(EVENT_KINDS)
    kind = kinds[proba.to_numpy().argmax(axis=1)] if len(events) else kinds[:0]
    # a meteor needs the event classifier and at least one of its pixel windows to agree
    is_meteor = (p_meteor >= model.meteor_threshold) & (
        events["score_max"].to_numpy() >= METEOR_LIKE)
    kind = np.where(is_meteor, "meteor", np.where(kind == "meteor", "background", kind))
    extra = pd.DataFrame({"kind": kind.astype(object), "score": p_meteor,
                          "duration_s": (events["t_end"] - events["t_start"] + 1).to_numpy()
                          * frame_time}, index=events.index)
    events = pd.concat([events[["event"]], extra[["kind"]], events.drop(columns="event"),
                        proba, extra[["score", "duration_s"]]], axis=1)
    cands.features["score"] = scores
    cands.features["event"] = labels
    return scores, events


def run_cube(cube: np.ndarray, *, model: EventsModel | None = None,
             frame_time: float = FRAME_TIME, frame_times: np.ndarray | None = None,
             path: str = "<array>") -> EventsResult:
    """Find and name the events of a cube already in memory.

    Parameters
    ----------
    cube : ndarray, shape (T, ny, nx)
        Counts per frame, time first.
    model : EventsModel, optional
        Default: the shipped model.
    frame_time : float
        Seconds per frame.
    frame_times : ndarray, shape (T,), optional
        Time of each frame (s); gaps longer than 1.5 frame times split the cube.
    path : str
        Named in errors and in the result.

    Returns
    -------
    EventsResult
        Events of kind ``background`` (noise, residuals of city lights and clouds) are
        left out of ``events``; every candidate stays in ``candidates``.
    """
    model = model or EventsModel.load()
    cube = check_cube(np.asarray(cube, np.float32), path)
    bad = bad_frames(cube)
    notes = []
    if bad.all():
        raise SkytriageInputError(path, "every frame is NaN, infinite or empty")
    if bad.any():
        notes.append(f"{int(bad.sum())} frames with NaN, inf or no signal were treated as "
                     "missing")
        cube = repair(cube, bad)
    pieces, all_events, backgrounds = [], [], []
    offset_event = 0
    for start, stop in segments(frame_times, len(cube), frame_time):
        if stop - start < MIN_FRAMES:
            notes.append(f"frames {start}-{stop - 1} lie between gaps and are too few "
                         f"(< {MIN_FRAMES}) to analyse: skipped")
            continue
        analysis = analyse(cube[start:stop], bad[start:stop])
        analysis.candidates.t += start
        _, events = score_events(analysis, model, frame_time)
        events["t_start"] = events["t_start"].clip(lower=start)  # candidates' t are global
        events["t_end"] = events["t_end"].clip(upper=stop - 1)
        events["event"] += offset_event
        analysis.candidates.features["event"] += offset_event
        offset_event += len(events)
        backgrounds.append((start, stop, analysis.background))
        pieces.append(analysis.candidates)
        all_events.append(events)
    if not pieces:
        raise SkytriageInputError(path, f"no stretch of at least {MIN_FRAMES} frames between "
                                        "gaps in time")
    cands = concat(pieces)
    events = pd.concat(all_events, ignore_index=True)
    events = events[events["kind"] != "background"].reset_index(drop=True)
    refine_tracks(events, cands, cube, lambda t, y, x: expected_at(backgrounds, t, y, x),
                  frame_time)
    event_map = np.zeros(cube.shape[1:], np.float32)
    if len(cands):
        np.maximum.at(event_map, (cands.y, cands.x), cands.features["score"].to_numpy())
    vx, vy = np.median(np.asarray([b.velocity for _, _, b in backgrounds]), axis=0)
    ordered = [c for c in EVENT_COLUMNS if c in events.columns]
    events = events[ordered + [c for c in events.columns if c not in ordered]]
    return EventsResult(event_map=event_map, events=events, candidates=cands,
                        velocity=(float(vx) / frame_time, float(vy) / frame_time),
                        frame_time=frame_time, cube=cube, backgrounds=backgrounds, path=path,
                        notes=notes)


def read_events_cube(path: str | os.PathLike, frame_time: float | None = None
                     ) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Read a cube, its frame time (TIMEDEL, s) and the frame times of a TIME table if any.

    Returns
    -------
    (cube, frame_time, frame_times)
    """
    frame = read_cube(path, nonfinite="keep")
    header = frame.header
    if frame_time is None:
        frame_time = float(header.get("TIMEDEL", FRAME_TIME))
    if not frame_time > 0:
        raise SkytriageInputError(path, f"TIMEDEL = {frame_time}: the frame time must be > 0 s")
    return frame.data, frame_time, _frame_times(path, len(frame.data))


def _frame_times(path: str | os.PathLike, n_frames: int) -> np.ndarray | None:
    """Times of the frames from a table extension with a TIME column, if the file has one."""
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul[1:]:
            if isinstance(hdu, fits.BinTableHDU) and "TIME" in hdu.columns.names:
                times = np.asarray(hdu.data["TIME"], np.float64)
                if len(times) != n_frames:
                    raise SkytriageInputError(
                        path, f"TIME table has {len(times)} rows for {n_frames} frames")
                if np.any(np.diff(times) <= 0):
                    raise SkytriageInputError(path, "TIME table is not increasing")
                return times
    return None


def run(cube: str | os.PathLike | np.ndarray, *, model: EventsModel | str | os.PathLike |
        None = None, frame_time: float | None = None) -> EventsResult:
    """Find meteors and the other transients in a cube.

    Parameters
    ----------
    cube : path or ndarray
        A FITS cube (t, y, x) of counts per frame with TIMEDEL, or the array.
    model : EventsModel or path, optional
        Default: the shipped model.
    frame_time : float, optional
        Seconds per frame; default TIMEDEL of the file, else 0.04096 s.

    Returns
    -------
    EventsResult
    """
    if not isinstance(model, EventsModel):
        model = EventsModel.load(model)
    if isinstance(cube, np.ndarray):
        return run_cube(cube, model=model, frame_time=frame_time or FRAME_TIME)
    data, frame_time, times = read_events_cube(cube, frame_time)
    return run_cube(data, model=model, frame_time=frame_time, frame_times=times,
                    path=os.fspath(cube))
