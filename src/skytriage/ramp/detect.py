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
#: The level-change trigger for faint cosmic rays needs this many windows of differences
#: per integration: in shorter ramps the pixel's flux is too uncertain (on 20-group ramps
#: nearly all its triggers were noise).
LEVEL_MIN_WINDOWS = 4


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
    level_sigma : float
        A faint cosmic ray shows better in the windowed level change of its pixel
        (``rtn_window`` reads on each side: the read noise averages down) than in its one
        difference: a difference above ``level_pixel_sigma`` where the level change peaks
        above ``level_sigma`` is a cosmic ray, unless the pixel's level also falls by more
        than ``level_fall_sigma`` somewhere (a telegraph pixel).
    level_pixel_sigma, level_fall_sigma : float
        See ``level_sigma``.
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
    rtn_candidate_sigma : float
        Pixels with level changes or differences of both signs beyond this are fitted
        for one short visit (see :func:`_visit_search`).
    rtn_visit_sigma : float
        A visit must explain the reads better than any lasting step by this squared.
    rtn_visit_max_length, rtn_visit_max_reads : int
        Longest visit fitted (reads; longer ones show in the windowed level changes), and
        reads per fitted segment (longer ramps are fitted in half-overlapping segments).
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
    level_sigma: float = 5.0
    level_pixel_sigma: float = 1.5
    level_fall_sigma: float = 3.0
    curvature: float = 0.02
    rtn_sigma: float = 5.0
    rtn_window: int = 8
    rtn_max_ratio: float = 2.5
    rtn_min_alternation: float = 0.6
    rtn_candidate_sigma: float = 2.5
    rtn_visit_sigma: float = 4.5
    rtn_visit_max_length: int = 24
    rtn_visit_max_reads: int = 40
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
    ``z`` its significance (inf for a saturation onset); ``jump`` the excess charge (e-);
    ``level`` the significance of the windowed level change where it triggered
    (``RuleSettings.level_sigma``; 0 elsewhere).
    """

    integration: np.ndarray
    group: np.ndarray
    y: np.ndarray
    x: np.ndarray
    z: np.ndarray
    jump: np.ndarray
    level: np.ndarray

    FIELDS = ("integration", "group", "y", "x", "z", "jump", "level")

    @classmethod
    def concat(cls, parts: list[Candidates]) -> Candidates:
        """One list from many (e.g. one per band)."""
        if not parts:
            empty = np.zeros(0, np.int32)
            floats = np.zeros(0, np.float32)
            return cls(empty, empty, empty, empty, floats, floats, floats)
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.FIELDS))

    def select(self, keep: np.ndarray) -> Candidates:
        """The candidates where ``keep`` (bool or indices) holds."""
        return Candidates(*(getattr(self, name)[keep] for name in self.FIELDS))


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
    flux = _median(diffs)
    partial = ~all_valid
    if partial.any():
        sub = np.where(valid[:, partial], diffs[:, partial], np.nan)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                flux[partial] = np.nanmedian(sub, axis=0)
    return np.nan_to_num(flux).astype(np.float32)


def _median(values: np.ndarray) -> np.ndarray:
    """``numpy.median(values, axis=0)``, three times faster: one partition, no NaN checks."""
    k = values.shape[0] // 2
    if values.shape[0] % 2:
        return np.partition(values, k, axis=0)[k]
    part = np.partition(values, [k - 1, k], axis=0)
    return (part[k - 1] + part[k]) / 2


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
    level_voxels = _level_voxels(z, level, flux, read_noise, settings)
    candidates = _candidates(z, diffs - flux, sat, rtn_steps, level_voxels, settings, y0)
    for row in rtn_rows:
        row["y"] += y0
    return BandResult(flux=flux, slope=slope, saturated=sat[:, -1].any(axis=0),
                      saturated_first=sat[:, 0].any(axis=0), bad=bad,
                      candidates=candidates, rtn=rtn_rows)


def _candidates(z: np.ndarray, excess: np.ndarray, sat: np.ndarray,
                rtn_steps: np.ndarray | None, level_voxels: tuple[np.ndarray, np.ndarray],
                settings: RuleSettings, y0: int) -> Candidates:
    """Voxels with a positive difference above ``cluster_sigma``, a saturation onset, or
    one at a significant peak of the windowed level change (see :class:`RuleSettings`)."""
    hot = z >= settings.cluster_sigma
    if rtn_steps is not None:
        hot &= ~rtn_steps
    onset = sat[:, 1:] & ~sat[:, :-1]
    flat = np.flatnonzero(hot | onset)
    level_flat, level_sigma = level_voxels
    if rtn_steps is not None:
        keep = ~rtn_steps.reshape(-1)[level_flat]
        level_flat, level_sigma = level_flat[keep], level_sigma[keep]
    if level_flat.size:
        flat = np.union1d(flat, level_flat)
    levels = np.zeros(flat.size, np.float32)
    levels[np.searchsorted(flat, level_flat)] = level_sigma
    i, k, y, x = np.unravel_index(flat, z.shape)
    zz = np.where(onset[i, k, y, x], np.inf, z[i, k, y, x]).astype(np.float32)
    return Candidates(i.astype(np.int32), (k + 1).astype(np.int32), (y + y0).astype(np.int32),
                      x.astype(np.int32), zz, excess[i, k, y, x].astype(np.float32), levels)


def _level_voxels(z: np.ndarray, level: np.ndarray | None, flux: np.ndarray,
                  read_noise: float, settings: RuleSettings) -> tuple[np.ndarray, np.ndarray]:
    """Differences above ``level_pixel_sigma`` where their pixel's windowed level change
    peaks above ``level_sigma`` (the largest within ``rtn_window`` differences either
    side) in a pixel whose level never falls below ``-level_fall_sigma``; none in ramps
    shorter than :data:`LEVEL_MIN_WINDOWS` windows.

    The significance here counts the error of the pixel's flux too: a flux off by
    ``delta`` tilts the windowed level change by ``delta`` times the window, which in a
    short ramp is as large as the read noise of the level itself.

    Parameters
    ----------
    z : numpy.ndarray
        z-scores of the differences, ``(ints, n_diffs, rows, nx)``.
    level : numpy.ndarray or None
        Windowed level changes in sigma, same shape (from :func:`fit_telegraph`).
    flux : numpy.ndarray
        e- per group, ``(rows, nx)``.
    read_noise : float
        e- per read.
    settings : RuleSettings

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Flat indices into ``z`` (sorted) and the significance at each.
    """
    empty = np.zeros(0, np.int64), np.zeros(0, np.float32)
    ints, n_diffs = z.shape[:2]
    window = telegraph_window(n_diffs, settings)
    if level is None or n_diffs < LEVEL_MIN_WINDOWS * window:
        return empty
    i, k, y, x = np.nonzero((level >= settings.level_sigma) & (z >= settings.level_pixel_sigma))
    if i.size == 0:
        return empty
    around = np.clip(k[:, None] + np.arange(1 - window, window)[None], 0, n_diffs - 1)
    peak = level[i[:, None], around, y[:, None], x[:, None]].max(axis=1) <= level[i, k, y, x]
    i, k, y, x = i[peak], k[peak], y[peak], x[peak]
    never_falls = level[:, :, y, x].min(axis=(0, 1)) > -settings.level_fall_sigma
    i, k, y, x = i[never_falls], k[never_falls], y[never_falls], x[never_falls]
    weights, read_term = step_weights(n_diffs, window)
    f = np.maximum(flux[y, x], 0)
    variance = (read_term[k] * read_noise**2 + (weights[k] ** 2).sum(axis=1) * f
                + (settings.curvature * f * window) ** 2)
    # the mean of n differences telescopes: read noise 2 sigma^2 / n^2, Poisson f / n
    n = ints * n_diffs
    flux_error = 2 * read_noise**2 / (ints * n_diffs**2) + f / n
    tilt = weights[k].sum(axis=1) ** 2 * flux_error
    significance = level[i, k, y, x] * np.sqrt(variance / (variance + tilt))
    keep = significance >= settings.level_sigma
    flat = np.ravel_multi_index((i[keep], k[keep], y[keep], x[keep]), z.shape)
    return flat, significance[keep].astype(np.float32)


def telegraph_window(n_diffs: int, settings: RuleSettings) -> int:
    """Reads on each side of a windowed level change for a ramp of ``n_diffs`` differences."""
    return min(settings.rtn_window, max(2, n_diffs // 2))


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
    Jumps (:func:`_jump_steps`: cosmic rays, snowballs) are taken out of the windowed
    levels and, when they cannot be telegraph rises, out of the fit (:func:`_two_state_fit`);
    with windowed changes the flux is measured again away from them and the fit redone
    (:func:`_flux_correction`). Pixels with changes of both signs beyond
    ``rtn_candidate_sigma`` that this leaves are fitted for one short visit
    (:func:`_visit_search`).

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
        One per RTN pixel: ``y`` (band row), ``x``, ``fit`` (``steps``: level changes;
        ``visit``: one short visit, see :func:`_visit_search`), ``amplitude`` (e-), ``transitions``,
        ``duty_cycle`` (fraction of reads in the high state), ``snr`` (median step
        significance), ``alternation`` (fraction of consecutive steps of opposite sign),
        ``amplitude_ratio`` (up / down step sizes, larger over smaller), ``first_group``,
        ``transition_groups`` (``[integration, group, sign, windowed]`` of every
        transition: sign +1 a rise, -1 a fall; windowed 1 when it was found as a level
        change over several reads, its group then uncertain by one).
    numpy.ndarray or None
        bool like ``excess``: the differences that carry a telegraph transition.
    numpy.ndarray or None
        float32 like ``excess``: significance of the windowed level change at every
        difference (None with fewer than 4 differences per integration).
    """
    ints, n_diffs, rows, nx = excess.shape
    if n_diffs < 4:
        return [], None, None
    window = telegraph_window(n_diffs, settings)
    weights, read_term = step_weights(n_diffs, window)
    f = np.maximum(flux, 0).reshape(-1)
    var = (read_term[:, None] * read_noise**2 + (weights**2).sum(axis=1)[:, None] * f[None]
           + ((settings.curvature * f * window) ** 2)[None])
    scale = (1 / np.sqrt(var))[None]
    flat_valid = valid.reshape(ints, n_diffs, -1)
    invalid_near = _near_invalid(flat_valid, window)
    flat_excess = excess.reshape(ints, n_diffs, -1)
    spikes = np.where(flat_valid, z.reshape(ints, n_diffs, -1), 0)
    jumpless_excess = np.where(flat_valid, flat_excess, 0)
    steps = np.matmul(weights, jumpless_excess)
    level = _levels(steps, scale, invalid_near)
    # the same level changes with the jumps (cosmic rays, snowballs) taken out of the ramp
    jumps, hit = _jump_steps(spikes, settings)
    jumpless = level.copy()
    if hit.size:
        jumpless_excess[:, :, hit] *= ~jumps[:, :, hit]
        steps[:, :, hit] = np.matmul(weights, jumpless_excess[:, :, hit])
        jumpless[:, :, hit] = _levels(steps[:, :, hit], scale[:, :, hit],
                                      invalid_near[:, :, hit])
    limit = settings.rtn_sigma
    highest = np.maximum(jumpless.max(axis=(0, 1)), spikes.max(axis=(0, 1)))
    lowest = np.minimum(jumpless.min(axis=(0, 1)), spikes.min(axis=(0, 1)))
    up, down = highest > limit, lowest < -limit
    results, marks = [], np.zeros_like(valid)

    def add(p: int, row: dict, used: list[_Change]) -> None:
        y, x = divmod(int(p), nx)
        row.update(y=y, x=x)
        results.append(row)
        for point in used:
            marks[point.integration, point.difference, y, x] = True

    for p in np.flatnonzero(up & down):
        points = _change_points(spikes[:, :, p], jumps[:, :, p], flat_excess[:, :, p],
                                jumpless[:, :, p], steps[:, :, p], window, limit)
        windowed = [(c.integration, c.difference) for c in points if c.windowed]
        if windowed:  # again, with the flux taken away from the windowed changes too
            in_flux = flat_valid[:, :, p] & ~_steps(spikes[:, :, p, None], settings)[..., 0]
            tilt = _flux_correction(flat_excess[:, :, p], in_flux, windowed)
            kept = flat_valid[:, :, p] & ~jumps[:, :, p]
            pixel_steps = np.matmul(weights, (jumpless_excess[:, :, p] - tilt * kept)
                                    [..., None])[..., 0]
            pixel_level = pixel_steps * scale[0, :, p]
            pixel_level[invalid_near[:, :, p]] = 0
            points = _change_points(spikes[:, :, p], jumps[:, :, p], flat_excess[:, :, p],
                                    pixel_level, pixel_steps, window, limit)
        fitted = _two_state_fit(points, n_diffs + 1, ints, settings)
        if fitted is not None:
            add(p, *fitted)
    found = np.zeros(rows * nx, bool)
    found[[r["y"] * nx + r["x"] for r in results]] = True
    # a small step left in the flux hides its partner: the visit fit looks with a lower bar
    low = settings.rtn_candidate_sigma
    maybe = (highest > low) & (lowest < -low) & ~found
    for p, row, used in _visit_search(np.flatnonzero(maybe), jumpless_excess, f, read_noise,
                                      settings):
        add(p, row, used)
    return results, marks if results else None, level.reshape(excess.shape)


def _flux_correction(excess: np.ndarray, in_flux: np.ndarray,
                     changes: list[tuple[int, int]]) -> float:
    """Change of one pixel's flux (e- per group) when it is measured away from ``changes``.

    The flux leaves out clear steps only; a small step left in it tilts a short ramp: the
    windowed level then falls everywhere away from the step (by ``window / n_diffs`` of
    it), which looks like the other half of a telegraph pair. ``excess`` (differences
    minus the flux) and ``in_flux`` (the differences the flux was measured on) are
    ``(ints, n_diffs)``; ``changes`` lists ``(integration, difference)``; the differences
    at and next to them are left out too.
    """
    quiet = in_flux.copy()
    for integration, t in changes:
        quiet[integration, max(0, t - 1):t + 2] = False
    return float(excess[quiet].mean()) if quiet.any() else 0.0


def _jump_steps(spikes: np.ndarray, settings: RuleSettings, partner: float = 2.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Differences beyond ``jump_sigma`` that the next one does not undo (a fall beyond
    ``partner`` sigma and within ``rtn_max_ratio`` of the rise, as after one noisy read):
    steps up that stay (cosmic rays, snowballs, or a large telegraph rise).

    Returns
    -------
    numpy.ndarray
        bool ``(ints, n_diffs, pixels)``.
    numpy.ndarray
        Flat indices of the pixels with at least one jump.
    """
    jumps = spikes >= settings.jump_sigma
    i, t, p = np.nonzero(jumps)
    inside = t + 1 < spikes.shape[1]
    after = np.zeros(t.size, spikes.dtype)
    after[inside] = spikes[i[inside], t[inside] + 1, p[inside]]
    undone = (after < -partner) & (-after * settings.rtn_max_ratio >= spikes[i, t, p])
    jumps[i[undone], t[undone], p[undone]] = False
    return jumps, np.unique(p[~undone])


def _near_invalid(valid: np.ndarray, window: int) -> np.ndarray:
    """bool like ``valid`` ``(ints, n_diffs, pixels)``: within ``window`` differences of an
    invalid one (the windowed level there mixes in reads that are not there)."""
    near = np.zeros(valid.shape, bool)
    bad = np.flatnonzero(~valid.all(axis=(0, 1)))
    if bad.size:
        near[:, :, bad] = ndimage.maximum_filter1d((~valid[:, :, bad]).astype(np.uint8),
                                                   2 * window + 1, axis=1).astype(bool)
    return near


def _levels(steps: np.ndarray, scale: np.ndarray, invalid_near: np.ndarray) -> np.ndarray:
    """Windowed level changes in sigma from the level steps (e-), zero near invalid reads,
    ``(ints, n_diffs, pixels)``."""
    level = steps * scale
    level[invalid_near] = 0
    return level


@dataclass(frozen=True)
class VisitModels:
    """Least-squares models of a short ramp: a line plus one lasting step, or a line plus
    one visit of the other state (a box of reads ``start .. end - 1``).

    ``step_basis`` and ``visit_basis`` are orthonormal bases ``(n_models, n_reads, 3)`` of
    the columns (1, read index, step or box); the part of a pixel's residual reads that a
    model explains is ``|basis.T @ reads|^2``.
    """

    start: np.ndarray
    end: np.ndarray
    step_basis: np.ndarray
    visit_basis: np.ndarray

    @classmethod
    def build(cls, n_reads: int, max_length: int) -> VisitModels:
        j = np.arange(n_reads, dtype=float)
        boxes = [(s, e) for s in range(1, n_reads - 1)
                 for e in range(s + 1, min(n_reads - 1, s + max_length) + 1)]
        start = np.array([s for s, _ in boxes])
        end = np.array([e for _, e in boxes])
        box = ((j >= start[:, None]) & (j < end[:, None])).astype(float)
        step = (j >= np.arange(1, n_reads)[:, None]).astype(float)

        def basis(columns: np.ndarray) -> np.ndarray:
            design = np.stack([np.ones_like(columns), np.broadcast_to(j, columns.shape),
                               columns], axis=2)
            return np.linalg.qr(design)[0].astype(np.float32)

        return cls(start, end, basis(step), basis(box))


def _visit_search(pixels: np.ndarray, excess: np.ndarray, flux: np.ndarray,
                  read_noise: float, settings: RuleSettings, chunk: int = 2048):
    """Telegraph pixels among ``pixels`` seen as one short visit of the other state.

    In a short ramp the windowed level changes see a visit of a few reads only when it is
    large, and a lone step (a faint cosmic ray) left in the flux tilts the ramp into what
    looks like a second edge. So each pixel's reads are fitted by least squares with a
    free line plus the best lasting step, and with a free line plus the best visit
    (:class:`VisitModels`): a visit that explains the reads better than any single step
    by ``rtn_visit_sigma^2`` (in units of the read variance, plus ``f n_reads / 6`` for
    the Poisson random walk around a line) is telegraph noise: a toggle there and back.
    Ramps longer than ``rtn_visit_max_reads`` are fitted in half-overlapping segments of
    that many reads.

    Parameters
    ----------
    pixels : numpy.ndarray
        Flat indices of the pixels to search.
    excess : numpy.ndarray
        Residual differences (e-), jumps and invalid ones zeroed, ``(ints, n_diffs, npix)``.
    flux : numpy.ndarray
        e- per group, ``(npix,)``.

    Yields
    ------
    (int, dict, list of _Change)
        Pixel, fit (as :func:`fit_telegraph`'s rows) and its two transitions.
    """
    ints, n_diffs, _ = excess.shape
    if pixels.size == 0:
        return
    n_reads = min(n_diffs + 1, settings.rtn_visit_max_reads)  # reads per segment
    starts = list(range(0, n_diffs + 2 - n_reads, max(1, n_reads // 2)))
    if starts[-1] != n_diffs + 1 - n_reads:
        starts.append(n_diffs + 1 - n_reads)
    models = VisitModels.build(n_reads, settings.rtn_visit_max_length)
    for lo in range(0, pixels.size, chunk):
        part = pixels[lo:lo + chunk]
        variance = read_noise**2 + flux[part] * n_reads / 6
        best = np.zeros(part.size)
        choice = np.zeros((part.size, 3), int)
        for integration in range(ints):
            for first in starts:
                reads = np.zeros((n_reads, part.size), np.float32)
                np.cumsum(excess[integration, first:first + n_reads - 1][:, part], axis=0,
                          out=reads[1:])
                step = (np.matmul(models.step_basis.transpose(0, 2, 1), reads) ** 2).sum(1)
                visit = (np.matmul(models.visit_basis.transpose(0, 2, 1), reads) ** 2).sum(1)
                gain = (visit.max(axis=0) - step.max(axis=0)) / variance
                better = gain > best
                best[better] = gain[better]
                choice[better, 0], choice[better, 1] = integration, first
                choice[better, 2] = visit.argmax(axis=0)[better]
        for n in np.flatnonzero(best >= settings.rtn_visit_sigma**2):
            integration, first, b = choice[n]
            reads = np.concatenate([[0.0], np.cumsum(
                excess[integration, first:first + n_reads - 1, part[n]])])
            yield int(part[n]), *_visit_row(int(integration), int(first), models, int(b),
                                            reads, float(np.sqrt(best[n])), ints,
                                            n_diffs + 1)


def _visit_row(integration: int, first: int, models: VisitModels, b: int, reads: np.ndarray,
               snr: float, ints: int, n_reads: int) -> tuple[dict, list[_Change]]:
    """The telegraph fit of one visit: its amplitude and its two transitions (``reads``:
    the segment of the ramp that starts at read ``first``)."""
    start, end = int(models.start[b]), int(models.end[b])
    j = np.arange(reads.size)
    design = np.stack([np.ones(reads.size), j, (j >= start) & (j < end)], axis=1)
    amplitude = float(np.linalg.lstsq(design, reads, rcond=None)[0][2])
    start, end = start + first, end + first
    sign = 1.0 if amplitude > 0 else -1.0
    used = [_Change(integration, start - 1, amplitude, sign * snr),
            _Change(integration, end - 1, -amplitude, -sign * snr)]
    length = end - start
    high = length if amplitude > 0 else n_reads - length
    row = {"fit": "visit", "amplitude": abs(amplitude), "transitions": 2,
           "duty_cycle": high / (n_reads * ints), "snr": snr, "alternation": 1.0,
           "amplitude_ratio": 1.0, "first_group": start,
           "transition_groups": [[integration, start, int(sign), 1],
                                 [integration, end, -int(sign), 1]]}
    return row, used


@dataclass(frozen=True)
class _Change:
    """One level change of a pixel: where, signed size (e-), significance, whether it is
    an outlying difference that stays up (a possible jump) or a windowed level change."""

    integration: int
    difference: int
    size: float
    sigma: float
    jump: bool = False
    windowed: bool = False


def _change_points(spikes: np.ndarray, jumps: np.ndarray, excess: np.ndarray,
                   level: np.ndarray, steps: np.ndarray, window: int, limit: float
                   ) -> list[_Change]:
    """One pixel's level changes: outlying differences first, then windowed changes of the
    jump-free level away from the outlying differences (``window`` reads; one read from a
    jump, which the jump-free level leaves out)."""
    points = []
    for integration in range(spikes.shape[0]):
        taken = np.zeros(spikes.shape[1], bool)
        for t in np.flatnonzero(np.abs(spikes[integration]) > limit):
            jump = bool(jumps[integration, t])
            points.append(_Change(integration, int(t), float(excess[integration, t]),
                                  float(spikes[integration, t]), jump))
            # a jump leaves the level with its noise: no windowed change next to it
            reach = 1 if jump else window
            taken[max(0, t - reach):t + reach + 1] = True
        for t in np.flatnonzero(_signed_peaks(level[integration], window, limit) & ~taken):
            points.append(_Change(integration, int(t), float(steps[integration, t]),
                                  float(level[integration, t]), windowed=True))
    return sorted(points, key=lambda c: (c.integration, c.difference))


def _signed_peaks(level: np.ndarray, window: int, limit: float) -> np.ndarray:
    """Local maxima above ``limit`` and local minima below ``-limit`` of one level series.

    Rises and falls are picked separately: a short visit of the other state puts a rise
    and a fall a few reads apart, and one peak of ``|level|`` over both would hide one.
    """
    size = 2 * window - 1
    rise = (level > limit) & (level == ndimage.maximum_filter1d(level, size, mode="nearest"))
    fall = (level < -limit) & (level == ndimage.minimum_filter1d(level, size, mode="nearest"))
    return rise | fall


def _without_jumps(points: list[_Change], typical_fall: float, max_ratio: float
                   ) -> list[_Change]:
    """A pixel's level changes without the jumps that cannot be telegraph rises: those
    more than ``max_ratio`` times the typical fall, then, of two rises in a row, the
    jump whose size is further from the typical fall (cosmic rays and snowballs only
    step up, a telegraph pixel rises and falls in turn)."""
    points = [c for c in points if not (c.jump and c.size > max_ratio * typical_fall)]
    while True:
        pairs = [(a, b) for a, b in zip(points, points[1:], strict=False)
                 if a.size > 0 and b.size > 0 and (a.jump or b.jump)]
        if not pairs:
            return points
        a, b = pairs[0]
        jumps = [c for c in (a, b) if c.jump]
        drop = max(jumps, key=lambda c: abs(np.log(c.size / typical_fall)))
        points = [c for c in points if c is not drop]


def _two_state_fit(points: list[_Change], n_reads: int, ints: int, settings: RuleSettings
                   ) -> tuple[dict, list[_Change]] | None:
    """Fit a two-state telegraph signal to one pixel's level changes.

    The pixel is telegraph noise when it has steps of both signs whose typical sizes
    agree within ``rtn_max_ratio`` and that mostly alternate (``rtn_min_alternation``);
    the state after an up step is high. Jumps that cannot be telegraph rises are left
    out first (:func:`_without_jumps`).

    Returns
    -------
    (dict, list of _Change) or None
        The fit and the changes it used (the telegraph transitions).
    """
    downs = [-c.size for c in points if c.size < 0]
    if not downs:
        return None
    typical = float(np.median(downs))
    points = _without_jumps(points, typical, settings.rtn_max_ratio)
    ups = [c.size for c in points if c.size > 0]
    if not ups:
        return None
    ratio = float(max(np.median(ups), np.median(downs)) / min(np.median(ups),
                                                               np.median(downs)))
    if ratio > settings.rtn_max_ratio:
        return None
    signs = np.sign([c.size for c in points])
    alternation = float(np.mean(signs[1:] != signs[:-1]))
    if alternation < settings.rtn_min_alternation:
        return None
    high, state, last = 0, int(signs[0] < 0), 0
    for c in points:
        position = c.integration * n_reads + c.difference + 1
        high += state * (position - last)
        last, state = position, int(c.size > 0)
    high += state * (n_reads * ints - last)
    row = {"fit": "steps", "amplitude": float(np.median(ups + downs)),
           "transitions": len(points),
           "duty_cycle": high / (n_reads * ints),
           "snr": float(np.median([abs(c.sigma) for c in points])),
           "alternation": alternation, "amplitude_ratio": ratio,
           "first_group": points[0].difference + 1,
           "transition_groups": [[c.integration, c.difference + 1, int(np.sign(c.size)),
                                  int(c.windowed)] for c in points]}
    return row, points


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
    core = cand.z >= settings.cluster_sigma  # without the faint level-change voxels
    for c in np.flatnonzero(maybe_snow):
        idx = order[starts[c]:starts[c + 1]]
        idx = idx[core[idx]]
        event = _snowball_event(cand, idx, settings)
        if event is not None:
            is_snow[c] = True
            _paint_snowball(snowball, cand.y[idx], cand.x[idx], settings.halo_dilate)
            balls.setdefault(int(st["key"][c]), []).append(event)
            events.append(event)
    strong = (st["max_z"] >= settings.jump_sigma) | (st["n_pair"] >= 2) | (st["onset"] > 0)
    combined = st["sum_z"] / np.sqrt(np.maximum(st["n_finite"], 1))
    faint_ok = (st["n_finite"] >= 3) & (combined >= settings.cluster_total_sigma)
    stepped = st["max_level"] > 0
    is_cr = ~is_snow & (strong | faint_ok | stepped)
    for c in np.flatnonzero(is_cr & (st["max_z"] < settings.halo_max_sigma)
                            & np.isin(st["key"], list(balls))):
        near = balls[int(st["key"][c])]
        if any(np.hypot(st["x"][c] - b["x"], st["y"][c] - b["y"])
               <= settings.halo_reach * b["radius"] for b in near):
            is_cr[c] = False
            idx = order[starts[c]:starts[c + 1]]
            _paint_snowball(snowball, cand.y[idx], cand.x[idx], settings.halo_dilate)
    limit = np.select([strong, stepped], [settings.neighbour_sigma, settings.level_pixel_sigma],
                      settings.cluster_sigma)[comp]
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
    """Per-cluster counts, sums, extremes, centroid and bounding box (arrays of ``n``).

    Counts and sums are over the candidates above ``cluster_sigma`` (``n``, ``n_finite``,
    ``sum_z``: the fainter differences found by their level change stay out of them);
    centroid, bounding box and extremes over all.
    """
    core = cand.z >= settings.cluster_sigma
    finite = np.isfinite(cand.z)
    z = np.where(finite, cand.z, 0)
    jump = np.where(finite, cand.jump, 0)
    count = np.bincount(comp, minlength=n)
    st = {"n": np.bincount(comp, weights=core, minlength=n).astype(int),
          "onset": np.bincount(comp, weights=~finite, minlength=n).astype(int),
          "n_finite": np.bincount(comp, weights=finite & core, minlength=n).astype(int),
          "n_pair": np.bincount(comp, weights=z >= settings.pair_sigma, minlength=n),
          "sum_z": np.bincount(comp, weights=z * core, minlength=n),
          "sum_jump": np.bincount(comp, weights=jump, minlength=n),
          "n_all": count,
          "n_measured": np.bincount(comp, weights=finite, minlength=n).astype(int),
          "x": np.bincount(comp, weights=cand.x, minlength=n) / count,
          "y": np.bincount(comp, weights=cand.y, minlength=n) / count}
    for name, values, reducer, start in (("max_z", z, np.maximum, -np.inf),
                                         ("max_level", cand.level, np.maximum, 0.0),
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
        n_finite = int(st["n_measured"][c])
        events.append({
            "type": "cr", "int": int(st["integration"][c]),
            "first_group": int(st["group"][c]), "x": float(st["x"][c]),
            "y": float(st["y"][c]), "n_pixels": int(st["n_all"][c]),
            "mean_intensity": float(st["sum_jump"][c] / n_finite) if n_finite else None,
            "max_intensity": float(st["max_jump"][c]) if n_finite else None,
            "extent": [int(st["x1"][c] - st["x0"][c] + 1), int(st["y1"][c] - st["y0"][c] + 1)],
            "max_sigma": float(st["max_z"][c]) if n_finite else None,
            "combined_sigma": float(combined[c]), "level_sigma": float(st["max_level"][c]),
            "n_saturated": int(st["onset"][c])})
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
