"""Rule-based detectors for up-the-ramp cubes: jumps, telegraph noise, snowballs.

The detector works on group differences in electrons against a per-pixel noise model,

    sigma_d^2 = 2 sigma_read^2 + max(f, 0) + (c f)^2,

with ``f`` the pixel's own flux per group (a robust mean of its differences), read noise
per read and a small relative term ``c`` for non-linearity and IPC that bend the ramp of
bright pixels. It runs in two passes:

1. :func:`analyse_band`, per band of rows (all groups): flux, noise, the z-score of
   every difference, the slope, telegraph-noise fits (a two-state step fit), and a
   sparse list of candidate voxels (positive differences above ``cluster_sigma``,
   saturation onsets).
2. :func:`classify_candidates`, over the sparse candidates of the whole array: connected
   clusters per (integration, group) become cosmic rays (a primary above ``jump_sigma``,
   two adjacent pixels above ``pair_sigma``, or several faint pixels whose combined
   significance passes ``cluster_total_sigma``; neighbours are kept only where their own
   difference passes ``neighbour_sigma``, i.e. where the charge really spread) or
   snowballs (large, round, with a newly saturated core; the cluster with its holes
   filled and the faint halo pieces of the same group around it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

CR, RTN, SNOWBALL, BAD, SATURATED = 1, 2, 4, 8, 32


@dataclass(frozen=True)
class RuleSettings:
    """Thresholds of the rule-based detectors (sigma of one group difference unless noted).

    Attributes
    ----------
    jump_sigma : float
        A cosmic ray needs one difference this far above the pixel's flux.
    pair_sigma : float
        ... or two 8-connected pixels of the same group above this.
    neighbour_sigma : float
        Pixels next to a jump join it when their own difference passes this.
    cluster_sigma : float
        Differences above this are candidates: they join clusters (snowball halos, the
        faint pixels of a track) and a cluster of several of them is a cosmic ray when
        their combined significance ``sum(z) / sqrt(n)`` passes ``cluster_total_sigma``.
    cluster_total_sigma : float
        See ``cluster_sigma``.
    curvature : float
        Relative noise term ``c`` (non-linearity, IPC, flat residuals).
    rtn_sigma : float
        A telegraph step needs a windowed level change this significant.
    rtn_window : int
        Reads on each side of a candidate level change.
    rtn_max_ratio : float
        Largest ratio between the sizes of a pixel's up and down steps.
    rtn_min_alternation : float
        Smallest fraction of consecutive steps of opposite sign.
    snowball_min_area : int
        Smallest cluster (px) that can be a snowball.
    snowball_min_saturated : int
        Newly saturated pixels a snowball's core must have.
    snowball_min_roundness : float
        Smallest minor/major axis ratio of a snowball.
    halo_dilate : int
        A snowball is its cluster (core and halo above ``cluster_sigma``), holes filled,
        grown by this many pixels.
    halo_reach : float
        Clusters of the snowball's group within this many snowball radii of its centre
        join it (pieces of the halo) when none of their differences passes
        ``halo_max_sigma``.
    halo_max_sigma : float
        See ``halo_reach``.
    """

    jump_sigma: float = 5.0
    pair_sigma: float = 3.5
    neighbour_sigma: float = 3.5
    cluster_sigma: float = 2.5
    cluster_total_sigma: float = 6.5
    curvature: float = 0.02
    rtn_sigma: float = 4.5
    rtn_window: int = 8
    rtn_max_ratio: float = 2.5
    rtn_min_alternation: float = 0.6
    snowball_min_area: int = 30
    snowball_min_saturated: int = 4
    snowball_min_roundness: float = 0.5
    halo_dilate: int = 1
    halo_reach: float = 1.5
    halo_max_sigma: float = 8.0


@dataclass
class Candidates:
    """Sparse candidate voxels: one entry per (integration, difference, y, x).

    ``group`` is the index of the first read that shows the event (difference index + 1);
    ``z`` its significance (inf for a saturation onset); ``jump`` the excess charge (e-).
    """

    integration: np.ndarray
    group: np.ndarray
    y: np.ndarray
    x: np.ndarray
    z: np.ndarray
    jump: np.ndarray

    @classmethod
    def concat(cls, parts: list[Candidates]) -> Candidates:
        """One list from many (e.g. one per band)."""
        if not parts:
            empty = np.zeros(0, np.int32)
            return cls(empty, empty, empty, empty, np.zeros(0, np.float32),
                       np.zeros(0, np.float32))
        return cls(*(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("integration", "group", "y", "x", "z", "jump")))


@dataclass
class BandResult:
    """What pass 1 found in one band of rows (rows are absolute, margins dropped)."""

    flux: np.ndarray  # e- per group, (rows, nx)
    slope: np.ndarray  # e- per group without jumps, (rows, nx)
    saturated: np.ndarray  # bool (rows, nx): saturated at some read
    saturated_first: np.ndarray  # bool (rows, nx): saturated from the first read
    bad: np.ndarray  # bool (rows, nx): non-finite reads
    candidates: Candidates
    rtn: list[dict] = field(default_factory=list)


def noise_model(flux: np.ndarray, read_noise: float, curvature: float) -> np.ndarray:
    """Standard deviation (e-) of one group difference for a pixel of flux ``flux`` (e-)."""
    f = np.maximum(flux, 0)
    return np.sqrt(np.float32(2 * read_noise**2) + f + (np.float32(curvature) * f) ** 2)


def _steps(z: np.ndarray, settings: RuleSettings, partner: float = 2.0) -> np.ndarray:
    """Differences that hold a step of the ramp, to be left out of the flux.

    One noisy read makes a +/- pair of differences; leaving out only one of the pair
    would bias the mean (the differences' noise is MA(1) and their sum telescopes). So
    an outlier beyond ``neighbour_sigma`` whose neighbour swings the other way beyond
    ``partner`` sigma stays in, unless it passes ``jump_sigma``.
    """
    before = np.zeros_like(z)
    before[:, 1:] = z[:, :-1]
    after = np.zeros_like(z)
    after[:, :-1] = z[:, 1:]
    up = (z > settings.neighbour_sigma) & (before > -partner) & (after > -partner)
    down = (z < -settings.neighbour_sigma) & (before < partner) & (after < partner)
    return up | down | (np.abs(z) >= settings.jump_sigma)


def _robust_flux(diffs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median of the valid differences of every pixel, ``(n, rows, nx)`` -> ``(rows, nx)``."""
    all_valid = valid.all(axis=0)
    flux = np.median(diffs, axis=0)
    partial = ~all_valid
    if partial.any():
        sub = np.where(valid[:, partial], diffs[:, partial], np.nan)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                flux[partial] = np.nanmedian(sub, axis=0)
    return np.nan_to_num(flux).astype(np.float32)


def _clipped_mean(diffs: np.ndarray, keep: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Mean of the kept differences per pixel; ``fallback`` where none is kept."""
    n = keep.sum(axis=0)
    total = np.where(keep, diffs, 0).sum(axis=0, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), fallback).astype(np.float32)


def analyse_band(reads: np.ndarray, saturation: float, gain: float, read_noise: float,
                 settings: RuleSettings, y0: int = 0, collector=None) -> BandResult:
    """Pass 1 on one band: flux, noise model, z-scores, slope, RTN and candidate voxels.

    Parameters
    ----------
    reads : numpy.ndarray
        Reference-corrected reads (DN) of every integration, ``(ints, groups, rows, nx)``.
    saturation : numpy.ndarray or float
        Saturation flags are taken from ``raw >= SATURATE`` by the caller: here a bool
        array ``(ints, groups, rows, nx)``, or a float threshold applied to ``reads``.
    gain : float
        e- per DN.
    read_noise : float
        e- per read.
    settings : RuleSettings
    y0 : int
        Absolute row of the band's first row (for the candidate coordinates).
    collector : skytriage.ramp.model.PatchCollector, optional
        Receives the z-scores and level changes of the band for the learned network.

    Returns
    -------
    BandResult
    """
    ints, groups, rows, nx = reads.shape
    sat = saturation if isinstance(saturation, np.ndarray) else reads >= saturation
    sat = np.maximum.accumulate(sat, axis=1)  # once saturated, stays saturated
    finite = np.isfinite(reads)
    bad = ~finite.all(axis=(0, 1))
    electrons = np.where(finite, reads, 0) * np.float32(gain)
    diffs = np.diff(electrons, axis=1)  # (ints, groups-1, rows, nx)
    valid = ~sat[:, 1:] & ~bad[None, None]
    pooled, pooled_valid = (a.reshape(-1, rows, nx) for a in (diffs, valid))
    flux = _robust_flux(pooled, pooled_valid)
    sigma = noise_model(flux, read_noise, settings.curvature)
    z = (diffs - flux) / sigma
    quiet = pooled_valid & ~_steps(z, settings).reshape(-1, rows, nx)
    flux = _clipped_mean(pooled, quiet, flux)
    sigma = noise_model(flux, read_noise, settings.curvature)
    z = (diffs - flux) / sigma
    z[~valid] = 0
    rtn_rows, rtn_steps, level = fit_telegraph(diffs - flux, z, valid, flux, read_noise,
                                               settings)
    if collector is not None and level is not None:
        collector.add(z, level, valid, y0)
    keep = valid & (z < settings.neighbour_sigma) & (z > -settings.jump_sigma)
    if rtn_steps is not None:
        keep &= ~rtn_steps
    slope = _clipped_mean(diffs.reshape(-1, rows, nx), keep.reshape(-1, rows, nx), flux)
    candidates = _candidates(z, diffs - flux, sat, rtn_steps, settings, y0)
    for row in rtn_rows:
        row["y"] += y0
    return BandResult(flux=flux, slope=slope, saturated=sat[:, -1].any(axis=0),
                      saturated_first=sat[:, 0].any(axis=0), bad=bad,
                      candidates=candidates, rtn=rtn_rows)


def _candidates(z: np.ndarray, excess: np.ndarray, sat: np.ndarray,
                rtn_steps: np.ndarray | None, settings: RuleSettings, y0: int) -> Candidates:
    """Voxels with a positive difference above ``cluster_sigma`` or a saturation onset."""
    hot = z >= settings.cluster_sigma
    if rtn_steps is not None:
        hot &= ~rtn_steps
    onset = sat[:, 1:] & ~sat[:, :-1]
    i, k, y, x = np.nonzero(hot | onset)
    zz = np.where(onset[i, k, y, x], np.inf, z[i, k, y, x]).astype(np.float32)
    return Candidates(i.astype(np.int32), (k + 1).astype(np.int32), (y + y0).astype(np.int32),
                      x.astype(np.int32), zz, excess[i, k, y, x].astype(np.float32))


def step_weights(n_diffs: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear weights that turn residual differences into windowed level changes.

    The level change at difference ``t`` is the mean of up to ``window`` reads after it
    minus the mean of up to ``window`` reads before it (the ramp's own slope removed).

    Returns
    -------
    weights : numpy.ndarray
        ``(n_diffs, n_diffs)``: ``step[t] = weights[t] @ residual_differences``.
    read_term : numpy.ndarray
        ``(n_diffs,)``: ``1/n_before + 1/n_after`` (the read-noise variance factor).
    """
    n_reads = n_diffs + 1
    weights = np.zeros((n_diffs, n_diffs), np.float64)
    read_term = np.zeros(n_diffs)
    # reads j = 0..n_reads-1, read j = sum of differences k < j
    cumulative = np.tril(np.ones((n_reads, n_diffs)), -1)
    for t in range(n_diffs):
        before = np.arange(max(0, t - window + 1), t + 1)
        after = np.arange(t + 1, min(n_reads, t + 1 + window))
        weights[t] = cumulative[after].mean(axis=0) - cumulative[before].mean(axis=0)
        read_term[t] = 1 / before.size + 1 / after.size
    return weights.astype(np.float32), read_term.astype(np.float32)


def fit_telegraph(excess: np.ndarray, z: np.ndarray, valid: np.ndarray, flux: np.ndarray,
                  read_noise: float, settings: RuleSettings
                  ) -> tuple[list[dict], np.ndarray | None, np.ndarray | None]:
    """Find telegraph-noise pixels: level changes of both signs and similar size.

    A level change shows either as one outlying difference (a large step, or a state
    held for a single read: a +/- pair) or, when it is small, as a windowed change of the
    mean level (``rtn_window`` reads on each side; Poisson and read noise in its variance).

    Parameters
    ----------
    excess : numpy.ndarray
        Differences minus the flux (e-), ``(ints, n_diffs, rows, nx)``.
    z : numpy.ndarray
        Their significance (``excess / sigma_d``), same shape.
    valid : numpy.ndarray
        bool, same shape.
    flux : numpy.ndarray
        e- per group, ``(rows, nx)``.
    read_noise : float
        e- per read.
    settings : RuleSettings

    Returns
    -------
    list of dict
        One per RTN pixel: ``y`` (band row), ``x``, ``amplitude`` (e-), ``transitions``,
        ``duty_cycle`` (fraction of reads in the high state), ``snr`` (median step
        significance), ``alternation`` (fraction of consecutive steps of opposite sign),
        ``amplitude_ratio`` (up / down step sizes, larger over smaller), ``first_group``.
    numpy.ndarray or None
        bool like ``excess``: the differences that carry a telegraph transition.
    numpy.ndarray or None
        float32 like ``excess``: significance of the windowed level change at every
        difference (None with fewer than 4 differences per integration).
    """
    ints, n_diffs, rows, nx = excess.shape
    if n_diffs < 4:
        return [], None, None
    window = min(settings.rtn_window, max(2, n_diffs // 2))
    weights, read_term = step_weights(n_diffs, window)
    f = np.maximum(flux, 0).reshape(-1)
    poisson_term = (weights**2).sum(axis=1)
    curvature = (settings.curvature * f * window) ** 2
    cleaned = np.where(valid, excess, 0).reshape(ints, n_diffs, -1)
    steps = np.einsum("tk,ikp->itp", weights, cleaned)
    var = (read_term[:, None] * read_noise**2 + poisson_term[:, None] * f[None]
           + curvature[None])
    level = steps / np.sqrt(var)[None]
    invalid_near = ndimage.maximum_filter1d((~valid).reshape(ints, n_diffs, -1).astype(
        np.uint8), 2 * window + 1, axis=1).astype(bool)
    level[invalid_near] = 0
    spikes = np.where(valid, z, 0).reshape(ints, n_diffs, -1)
    limit = settings.rtn_sigma
    up = ((level > limit) | (spikes > limit)).any(axis=(0, 1))
    down = ((level < -limit) | (spikes < -limit)).any(axis=(0, 1))
    results, marks = [], np.zeros_like(valid)
    flat_excess = excess.reshape(ints, n_diffs, -1)
    for p in np.flatnonzero(up & down):
        points = _change_points(spikes[:, :, p], flat_excess[:, :, p], level[:, :, p],
                                steps[:, :, p], window, limit)
        row = _two_state_fit(points, n_diffs + 1, ints, settings)
        if row is None:
            continue
        y, x = divmod(int(p), nx)
        row.update(y=y, x=x)
        results.append(row)
        for integration, t, *_ in points:
            marks[integration, t, y, x] = True
    return results, marks if results else None, level.reshape(excess.shape)


def _change_points(spikes: np.ndarray, excess: np.ndarray, level: np.ndarray,
                   steps: np.ndarray, window: int, limit: float
                   ) -> list[tuple[int, int, float, float]]:
    """``(integration, difference, signed size e-, significance)`` of one pixel's level
    changes: outlying differences first, then windowed changes away from them."""
    points = []
    for integration in range(spikes.shape[0]):
        taken = np.zeros(spikes.shape[1], bool)
        for t in np.flatnonzero(np.abs(spikes[integration]) > limit):
            points.append((integration, int(t), float(excess[integration, t]),
                           float(spikes[integration, t])))
            taken[max(0, t - window):t + window + 1] = True
        strength = np.abs(level[integration])
        peaks = (strength > limit) & ~taken & (
            strength == ndimage.maximum_filter1d(strength, 2 * window - 1, mode="constant"))
        for t in np.flatnonzero(peaks):
            points.append((integration, int(t), float(steps[integration, t]),
                           float(level[integration, t])))
    return sorted(points)


def _two_state_fit(points: list[tuple[int, int, float, float]], n_reads: int, ints: int,
                   settings: RuleSettings) -> dict | None:
    """Fit a two-state telegraph signal to one pixel's level changes.

    The pixel is telegraph noise when it has steps of both signs whose typical sizes
    agree within ``rtn_max_ratio`` and that mostly alternate (``rtn_min_alternation``);
    the state after an up step is high.
    """
    ups = [s for _, _, s, _ in points if s > 0]
    downs = [-s for _, _, s, _ in points if s < 0]
    if not ups or not downs:
        return None
    ratio = float(max(np.median(ups), np.median(downs)) / min(np.median(ups),
                                                               np.median(downs)))
    if ratio > settings.rtn_max_ratio:
        return None
    signs = np.sign([s for _, _, s, _ in points])
    alternation = float(np.mean(signs[1:] != signs[:-1]))
    if alternation < settings.rtn_min_alternation:
        return None
    high, state, last = 0, int(signs[0] < 0), 0
    for integration, t, size, _ in points:
        position = integration * n_reads + t + 1
        high += state * (position - last)
        last, state = position, int(size > 0)
    high += state * (n_reads * ints - last)
    return {"amplitude": float(np.median(ups + downs)), "transitions": len(points),
            "duty_cycle": high / (n_reads * ints),
            "snr": float(np.median([abs(s) for *_, s in points])),
            "alternation": alternation, "amplitude_ratio": ratio,
            "first_group": points[0][1] + 1}


@dataclass
class Classified:
    """Pass-2 output: the 2-D mask bits from events and the event list."""

    cr: np.ndarray  # bool (ny, nx)
    snowball: np.ndarray  # bool (ny, nx)
    events: list[dict]


def classify_candidates(cand: Candidates, shape: tuple[int, int], settings: RuleSettings
                        ) -> Classified:
    """Group candidate voxels into clusters per (integration, group) and name each one.

    Every cluster's statistics are computed at once (vectorised); only clusters large
    enough to be snowballs are looked at one by one.

    Parameters
    ----------
    cand : Candidates
        From every band (absolute coordinates).
    shape : (int, int)
        ``(ny, nx)`` of the array.
    settings : RuleSettings

    Returns
    -------
    Classified
    """
    cr = np.zeros(shape, bool)
    snowball = np.zeros(shape, bool)
    if cand.z.size == 0:
        return Classified(cr, snowball, [])
    comp, n_comp = _components(cand)
    st = _cluster_stats(cand, comp, n_comp, settings)
    events: list[dict] = []
    balls: dict[int, list[dict]] = {}
    order = np.argsort(comp, kind="stable")
    starts = np.searchsorted(comp[order], np.arange(n_comp + 1))
    maybe_snow = (st["n"] >= settings.snowball_min_area) & (
        st["onset"] >= settings.snowball_min_saturated)
    is_snow = np.zeros(n_comp, bool)
    for c in np.flatnonzero(maybe_snow):
        idx = order[starts[c]:starts[c + 1]]
        event = _snowball_event(cand, idx, settings)
        if event is not None:
            is_snow[c] = True
            _paint_snowball(snowball, cand.y[idx], cand.x[idx], settings.halo_dilate)
            balls.setdefault(int(st["key"][c]), []).append(event)
            events.append(event)
    strong = (st["max_z"] >= settings.jump_sigma) | (st["n_pair"] >= 2) | (st["onset"] > 0)
    combined = st["sum_z"] / np.sqrt(np.maximum(st["n_finite"], 1))
    faint_ok = (st["n_finite"] >= 3) & (combined >= settings.cluster_total_sigma)
    is_cr = ~is_snow & (strong | faint_ok)
    for c in np.flatnonzero(is_cr & (st["max_z"] < settings.halo_max_sigma)
                            & np.isin(st["key"], list(balls))):
        near = balls[int(st["key"][c])]
        if any(np.hypot(st["x"][c] - b["x"], st["y"][c] - b["y"])
               <= settings.halo_reach * b["radius"] for b in near):
            is_cr[c] = False
            idx = order[starts[c]:starts[c + 1]]
            _paint_snowball(snowball, cand.y[idx], cand.x[idx], settings.halo_dilate)
    limit = np.where(strong, settings.neighbour_sigma, settings.cluster_sigma)[comp]
    keep = is_cr[comp] & (cand.z >= limit)
    cr[cand.y[keep], cand.x[keep]] = True
    cr &= ~snowball
    events += _cr_events(st, np.flatnonzero(is_cr), combined)
    return Classified(cr, snowball, events)


def _components(cand: Candidates) -> tuple[np.ndarray, int]:
    """Global cluster index of every candidate (8-connected within its integration and
    group) and the number of clusters."""
    key = cand.integration.astype(np.int64) * 1_000_000 + cand.group
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    comp = np.empty(key.size, np.int64)
    structure = np.ones((3, 3), bool)
    total = 0
    for chunk in np.split(order, bounds):
        ys, xs = cand.y[chunk], cand.x[chunk]
        y0, x0 = ys.min(), xs.min()
        box = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), bool)
        box[ys - y0, xs - x0] = True
        labels, n = ndimage.label(box, structure)
        comp[chunk] = labels[ys - y0, xs - x0] - 1 + total
        total += n
    return comp, total


def _cluster_stats(cand: Candidates, comp: np.ndarray, n: int, settings: RuleSettings
                   ) -> dict[str, np.ndarray]:
    """Per-cluster counts, sums, extremes, centroid and bounding box (arrays of ``n``)."""
    finite = np.isfinite(cand.z)
    z = np.where(finite, cand.z, 0)
    jump = np.where(finite, cand.jump, 0)
    count = np.bincount(comp, minlength=n)
    st = {"n": count,
          "onset": np.bincount(comp, weights=~finite, minlength=n).astype(int),
          "n_finite": np.bincount(comp, weights=finite, minlength=n).astype(int),
          "n_pair": np.bincount(comp, weights=z >= settings.pair_sigma, minlength=n),
          "sum_z": np.bincount(comp, weights=z, minlength=n),
          "sum_jump": np.bincount(comp, weights=jump, minlength=n),
          "x": np.bincount(comp, weights=cand.x, minlength=n) / count,
          "y": np.bincount(comp, weights=cand.y, minlength=n) / count}
    for name, values, reducer, start in (("max_z", z, np.maximum, -np.inf),
                                         ("max_jump", jump, np.maximum, -np.inf),
                                         ("x0", cand.x, np.minimum, np.inf),
                                         ("x1", cand.x, np.maximum, -np.inf),
                                         ("y0", cand.y, np.minimum, np.inf),
                                         ("y1", cand.y, np.maximum, -np.inf)):
        out = np.full(n, start)
        reducer.at(out, comp, values)
        st[name] = out
    first = np.full(n, -1, np.int64)
    first[comp[::-1]] = np.arange(comp.size)[::-1]
    st["integration"] = cand.integration[first]
    st["group"] = cand.group[first]
    st["key"] = st["integration"].astype(np.int64) * 1_000_000 + st["group"]
    return st


def _cr_events(st: dict[str, np.ndarray], clusters: np.ndarray,
               combined: np.ndarray) -> list[dict]:
    """detections.json entries of the cosmic-ray clusters."""
    events = []
    for c in clusters:
        n_finite = int(st["n_finite"][c])
        events.append({
            "type": "cr", "int": int(st["integration"][c]),
            "first_group": int(st["group"][c]), "x": float(st["x"][c]),
            "y": float(st["y"][c]), "n_pixels": int(st["n"][c]),
            "mean_intensity": float(st["sum_jump"][c] / n_finite) if n_finite else None,
            "max_intensity": float(st["max_jump"][c]) if n_finite else None,
            "extent": [int(st["x1"][c] - st["x0"][c] + 1), int(st["y1"][c] - st["y0"][c] + 1)],
            "max_sigma": float(st["max_z"][c]) if n_finite else None,
            "combined_sigma": float(combined[c]), "n_saturated": int(st["onset"][c])})
    return events


def _snowball_event(cand: Candidates, idx: np.ndarray, settings: RuleSettings) -> dict | None:
    """The detections.json entry of a cluster if it is round enough to be a snowball."""
    z = cand.z[idx]
    onset = ~np.isfinite(z)
    ys, xs = cand.y[idx].astype(float), cand.x[idx].astype(float)
    roundness = _roundness(ys, xs)
    if roundness < settings.snowball_min_roundness:
        return None
    jump = cand.jump[idx][~onset]
    return {"type": "snowball", "int": int(cand.integration[idx[0]]),
            "first_group": int(cand.group[idx[0]]), "x": float(xs.mean()),
            "y": float(ys.mean()), "n_pixels": int(idx.size),
            "mean_intensity": float(jump.mean()) if jump.size else None,
            "max_intensity": float(jump.max()) if jump.size else None,
            "extent": [int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
            "max_sigma": float(z[~onset].max()) if jump.size else None,
            "core_radius": float(np.sqrt(onset.sum() / np.pi)),
            "radius": float(np.sqrt(idx.size / np.pi)), "n_saturated": int(onset.sum()),
            "roundness": roundness}


def _roundness(ys: np.ndarray, xs: np.ndarray) -> float:
    """Minor/major axis ratio of a pixel set from its second moments (1 for a point)."""
    if ys.size < 3:
        return 1.0
    cov = np.cov(np.vstack([ys, xs])) + np.eye(2) / 12
    eig = np.linalg.eigvalsh(cov)
    return float(np.sqrt(max(eig[0], 1e-9) / max(eig[1], 1e-9)))


def _paint_snowball(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, grow: int) -> None:
    """Set a snowball's pixels: the cluster with its holes filled, grown by ``grow`` px."""
    y0, x0 = max(0, ys.min() - grow), max(0, xs.min() - grow)
    y1, x1 = min(mask.shape[0], ys.max() + grow + 1), min(mask.shape[1], xs.max() + grow + 1)
    local = np.zeros((y1 - y0, x1 - x0), bool)
    local[ys - y0, xs - x0] = True
    local = ndimage.binary_fill_holes(ndimage.binary_closing(local, iterations=2,
                                                             border_value=0) | local)
    if grow:
        local = ndimage.binary_dilation(local, iterations=grow)
    mask[y0:y1, x0:x1] |= local
