"""Labelled up-the-ramp cubes of an H2RG-like detector: cosmic rays, telegraph noise, snowballs.

Charge accumulates group by group (Poisson sky, dark current and stars), events deposit
charge at a random group, the pixel well clips at the full well, and the readout adds a
few per cent non-linearity, inter-pixel capacitance (IPC), telegraph offsets, the pedestal
(fixed per pixel, plus kTC per ramp), amplifier common-mode drifts (per output and group),
correlated row noise (seen by the reference columns too), and white read noise per read.
Reads are digitised to uint16 DN and clip at ``SATURATE``.

Everything is set by :class:`RampSimConfig` (a YAML file on the command line) and one seed.
The truth is a 2-D uint16 mask with the bits of the ``ramp`` contract (1 cosmic ray,
2 telegraph noise, 4 snowball, 32 saturated) and an event table.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from skytriage.errors import SkytriageInputError
from skytriage.sky.camera import H2RG
from skytriage.sky.noise import poisson
from skytriage.sky.psf import Gaussian
from skytriage.sky.stars import render_stars, star_field

CR, RTN, SNOWBALL, SATURATED = 1, 2, 4, 32
KINDS = {"cr": CR, "rtn": RTN, "snowball": SNOWBALL}


@dataclass
class RampSimConfig:
    """What one simulated exposure looks like (every field can be set from YAML).

    Attributes
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the whole array, reference border included (px).
    n_groups, n_ints : int
        Groups per integration and integrations per exposure (one frame per group).
    frame_time : float
        Seconds between groups (written as ``TGROUP``).
    gain, read_noise : float
        e- per DN and noise of every read (e-).
    bias, bias_spread, ktc_noise, drift, n_outputs : float, float, float, float, int
        Pedestal (DN), its pixel-to-pixel rms (DN), reset noise (e-), rms step of each
        output's common-mode random walk per group (DN), number of outputs.
    row_noise : float
        Correlated (smoothed over ``row_noise_scale`` rows) row offset per read, rms (e-).
    row_noise_scale : float
        Gaussian correlation length of the row noise (rows).
    ipc_alpha : float
        Fraction of a pixel's charge seen by each of its 4 neighbours (IPC).
    nonlinearity : float
        Fractional loss of signal at full well (the ramp bends as ``q (1 - k q / FW)``).
    full_well : float
        Pixel capacity (e-).
    saturation : float
        Absolute DN at which reads clip (header ``SATURATE``).
    refpix : int
        Width of the reference-pixel border (px).
    sky : (float, float)
        Range of the sky flux (e- per group), drawn per exposure.
    dark_current : float
        e-/s per pixel.
    n_stars : int
        Stars per exposure (Gaussian PSF, FWHM ``star_fwhm``), fluxes power-law between
        ``star_flux`` (e- per group).
    cr_rate : float
        Cosmic rays per megapixel per group.
    cr_energy : (float, float)
        Deposited charge range (e-), log-uniform.
    cr_track_fraction : float
        Fraction of cosmic rays that cross several pixels (short tracks).
    rtn_fraction : float
        Fraction of pixels with random telegraph noise.
    rtn_amplitude : (float, float)
        Range of the RTN offset (e-), uniform.
    rtn_dwell : (float, float)
        Range of the mean dwell time in each state (groups), drawn per pixel and state.
    snowball_rate : float
        Snowballs per megapixel per integration (at least ``snowball_min`` per exposure).
    snowball_min : int
        Snowballs in every exposure at least.
    snowball_radius : (float, float)
        Range of the saturated core radius (px), log-uniform; capped at a tenth of the
        smaller side of the array.
    truth_min_electrons : float
        A pixel belongs to an event when the event moved its signal by at least this (e-),
        IPC included.
    """

    shape: tuple[int, int] = (256, 256)
    n_groups: int = 100
    n_ints: int = 1
    frame_time: float = 10.737
    gain: float = 2.0
    read_noise: float = 12.0
    bias: float = 12000.0
    bias_spread: float = 600.0
    ktc_noise: float = 30.0
    drift: float = 2.0
    n_outputs: int = 4
    row_noise: float = 6.0
    row_noise_scale: float = 8.0
    ipc_alpha: float = 0.015
    nonlinearity: float = 0.03
    full_well: float = 90000.0
    saturation: float = 50000.0
    refpix: int = 4
    sky: tuple[float, float] = (1.0, 10.0)
    dark_current: float = 0.005
    n_stars: int = 20
    star_fwhm: float = 1.8
    star_flux: tuple[float, float] = (20.0, 20000.0)
    cr_rate: float = 100.0
    cr_energy: tuple[float, float] = (200.0, 6000.0)
    cr_track_fraction: float = 0.1
    rtn_fraction: float = 0.005
    rtn_amplitude: tuple[float, float] = (30.0, 300.0)
    rtn_dwell: tuple[float, float] = (20.0, 200.0)
    snowball_rate: float = 4.0
    snowball_min: int = 1
    snowball_radius: tuple[float, float] = (5.0, 200.0)
    truth_min_electrons: float = 25.0
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> RampSimConfig:
        """Read a YAML mapping of field names to values; unknown keys are an input error."""
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise SkytriageInputError(path, f"cannot read the YAML config ({err})") from None
        if not isinstance(values, dict):
            raise SkytriageInputError(path, "the YAML config must be a mapping of options")
        return cls.from_dict(values, path)

    @classmethod
    def from_dict(cls, values: dict, source: str | os.PathLike = "config") -> RampSimConfig:
        """Build a config from a mapping, converting lists to tuples; unknown keys fail."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SkytriageInputError(source, f"unknown option(s) {', '.join(unknown)}; "
                                              f"known: {', '.join(sorted(names))}")
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        config = dataclasses.replace(cls(), **clean)
        config.validate(source)
        return config

    def validate(self, source: str | os.PathLike = "config") -> None:
        """Raise an input error for values that cannot make a ramp."""
        ny, nx = self.shape
        if min(ny, nx) < 2 * self.refpix + 16:
            raise SkytriageInputError(source, f"shape {self.shape} too small for a "
                                              f"{self.refpix}-px reference border")
        if self.n_groups < 3 or self.n_ints < 1:
            raise SkytriageInputError(source, "need n_groups >= 3 and n_ints >= 1")
        if self.gain <= 0 or self.read_noise < 0:
            raise SkytriageInputError(source, "gain must be > 0 and read_noise >= 0")

    def as_dict(self) -> dict:
        """The config as plain YAML/JSON data."""
        out = dataclasses.asdict(self)
        out.pop("extra")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @property
    def camera(self) -> H2RG:
        """The H2RG whose pedestal, reference border and outputs the ramp uses."""
        return H2RG(gain=self.gain, read_noise=self.read_noise, bias=self.bias,
                    bias_spread=self.bias_spread, ktc_noise=self.ktc_noise,
                    full_well=self.full_well, dark_current=self.dark_current,
                    reference_border=self.refpix, n_outputs=self.n_outputs, drift=self.drift)


@dataclass
class SimulatedRamp:
    """A simulated exposure and its truth.

    Attributes
    ----------
    data : numpy.ndarray
        uint16 reads (DN), shape ``(n_ints, n_groups, ny, nx)``.
    header : dict
        FITS cards: GAIN (e-/DN), RDNOISE (e- per read), SATURATE (DN), TGROUP (s),
        REFPIX (px), SKYFLUX (e- per group).
    truth_mask : numpy.ndarray
        uint16 ``(ny, nx)``: bits 1 CR, 2 RTN (pixels that toggled at least twice),
        4 snowball, 32 saturated.
    event_ids : numpy.ndarray
        int32 ``(ny, nx)``: row of ``events`` that owns each pixel, -1 for none (a
        snowball owns its pixels; a later cosmic ray wins over an earlier one).
    ambiguous : numpy.ndarray
        bool ``(ny, nx)``: RTN pixels that toggled exactly once (a lone step is not
        recognisable as telegraph noise); left out of the scores.
    events : pandas.DataFrame
        One row per event: ``kind, int, group`` (first read that shows it), ``x, y``
        (centroid), ``electrons`` (deposit or RTN offset), ``radius`` (snowball core, px),
        ``n_pixels`` (truth footprint), ``n_transitions`` (RTN), ``visible``.
    config : RampSimConfig
    """

    data: np.ndarray
    header: dict
    truth_mask: np.ndarray
    event_ids: np.ndarray
    ambiguous: np.ndarray
    events: pd.DataFrame
    config: RampSimConfig


def simulate_ramp(config: RampSimConfig | None = None, seed: int = 0) -> SimulatedRamp:
    """Simulate one exposure read up the ramp.

    Parameters
    ----------
    config : RampSimConfig, optional
        Detector, scene and event settings (default: :class:`RampSimConfig()`).
    seed : int
        The same seed and config give the same ramp.

    Returns
    -------
    SimulatedRamp
    """
    config = config or RampSimConfig()
    config.validate()
    rng = np.random.default_rng(seed)
    ny, nx = config.shape
    sky = float(rng.uniform(*config.sky))
    rate = _scene(config, sky, rng)
    events, deposits = _plan_events(config, rng)
    rtn = _telegraph(config, rng)
    data = np.empty((config.n_ints, config.n_groups, ny, nx), np.uint16)
    saturated = np.zeros((ny, nx), bool)
    readout = _Readout(config, rng)
    for integration in range(config.n_ints):
        charge = np.zeros((ny, nx), np.float32)
        for group in range(config.n_groups):
            charge += poisson(rate, rng)
            for y, x, value in deposits.get((integration, group), []):
                np.add.at(charge, (y, x), value)
            np.minimum(charge, np.float32(config.full_well), out=charge)
            offset = rtn.offsets(integration * config.n_groups + group)
            data[integration, group] = readout.read(charge, offset, rng)
        saturated |= data[integration, -1] >= config.saturation
    rtn.readable = _unsaturated_reads(data, rtn.index, config.saturation)
    truth, ids, ambiguous, table = _truth(config, events, rtn, saturated)
    header = {"GAIN": config.gain, "RDNOISE": config.read_noise,
              "SATURATE": config.saturation, "TGROUP": config.frame_time,
              "REFPIX": config.refpix, "SKYFLUX": round(sky, 3), "BUNIT": "DN"}
    return SimulatedRamp(data, header, truth, ids, ambiguous, table, config)


def _unsaturated_reads(data: np.ndarray, index: np.ndarray, saturation: float) -> np.ndarray:
    """bool ``(n_ints * n_groups, len(index))``: reads of the pixels at flat ``index``
    below saturation."""
    ints, groups = data.shape[:2]
    flat = data.reshape(ints * groups, -1)[:, index]
    return flat < saturation


def _scene(config: RampSimConfig, sky: float, rng: np.random.Generator) -> np.ndarray:
    """Expected charge per group (e-), float32 ``(ny, nx)``; zero on the reference border."""
    ny, nx = config.shape
    image = np.full((ny, nx), sky + config.dark_current * config.frame_time, np.float32)
    if config.n_stars:
        lo, hi = config.star_flux
        stars = star_field((ny, nx), config.n_stars, rng, fmin=lo, fmax=hi)
        render_stars(image, stars["x"], stars["y"], stars["flux"], Gaussian(config.star_fwhm),
                     threshold=0.05)
    return image * config.camera.science_mask((ny, nx))


@dataclass
class _Event:
    """One planned event and its deposit (sparse: rows, columns, e-)."""

    kind: str
    integration: int
    group: int
    ys: np.ndarray
    xs: np.ndarray
    charge: np.ndarray
    radius: float = 0.0


def _plan_events(config: RampSimConfig, rng: np.random.Generator
                 ) -> tuple[list[_Event], dict[tuple[int, int], list]]:
    """Cosmic rays and snowballs with their (integration, group) and charge deposits."""
    ny, nx = config.shape
    b = config.refpix
    mpix = (ny - 2 * b) * (nx - 2 * b) / 1e6
    events: list[_Event] = []
    for integration in range(config.n_ints):
        n_cr = rng.poisson(config.cr_rate * mpix * (config.n_groups - 1))
        for _ in range(n_cr):
            events.append(_cosmic_ray(config, integration, rng))
        n_snow = rng.poisson(config.snowball_rate * mpix)
        if integration == 0:
            n_snow = max(n_snow, config.snowball_min)
        for _ in range(n_snow):
            events.append(_snowball(config, integration, rng))
    deposits: dict[tuple[int, int], list] = {}
    for event in events:
        deposits.setdefault((event.integration, event.group), []).append(
            (event.ys, event.xs, event.charge))
    return events, deposits


def _cosmic_ray(config: RampSimConfig, integration: int, rng: np.random.Generator) -> _Event:
    """A cosmic ray: most charge in one pixel, some spilt to its neighbours; a few tracks."""
    ny, nx = config.shape
    b = config.refpix
    energy = float(np.exp(rng.uniform(*np.log(config.cr_energy))))
    y0, x0 = int(rng.integers(b, ny - b)), int(rng.integers(b, nx - b))
    if rng.random() < config.cr_track_fraction:
        length = int(rng.integers(2, 6))
        angle = rng.uniform(0, np.pi)
        steps = np.arange(length)
        ys = np.rint(y0 + steps * np.sin(angle)).astype(int)
        xs = np.rint(x0 + steps * np.cos(angle)).astype(int)
        share = rng.dirichlet(np.full(length, 4.0))
    else:
        ys, xs, share = np.array([y0]), np.array([x0]), np.array([1.0])
    core = rng.uniform(0.6, 0.95)
    yy, xx, weights = [], [], []
    for y, x, s in zip(ys, xs, share, strict=True):
        spill = rng.dirichlet(np.full(8, 1.0)) * np.array([2, 2, 2, 2, 1, 1, 1, 1])
        spill /= spill.sum()
        oy = np.array([-1, 1, 0, 0, -1, -1, 1, 1])
        ox = np.array([0, 0, -1, 1, -1, 1, -1, 1])
        yy += [y, *(y + oy)]
        xx += [x, *(x + ox)]
        weights += [s * core, *(s * (1 - core) * spill)]
    yy, xx, weights = np.array(yy), np.array(xx), np.array(weights) * energy
    inside = (yy >= b) & (yy < ny - b) & (xx >= b) & (xx < nx - b)
    group = int(rng.integers(1, config.n_groups))
    return _Event("cr", integration, group, yy[inside], xx[inside],
                  weights[inside].astype(np.float32))


def _snowball(config: RampSimConfig, integration: int, rng: np.random.Generator) -> _Event:
    """A snowball: a round core that fills the well, with an exponential halo."""
    ny, nx = config.shape
    b = config.refpix
    lo, hi = config.snowball_radius
    hi = max(lo, min(hi, min(ny, nx) / 10))
    radius = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    halo_scale = radius * rng.uniform(0.15, 0.3)
    edge_charge = rng.uniform(3000.0, 15000.0)
    reach = radius + halo_scale * np.log(edge_charge / 5.0)
    yc, xc = rng.uniform(b, ny - b), rng.uniform(b, nx - b)
    y0, y1 = max(b, int(yc - reach)), min(ny - b, int(yc + reach) + 1)
    x0, x1 = max(b, int(xc - reach)), min(nx - b, int(xc + reach) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    r = np.hypot(yy - yc, xx - xc)
    charge = np.where(r <= radius, 2.0 * config.full_well,
                      edge_charge * np.exp(-(r - radius) / halo_scale))
    keep = charge >= 5.0
    group = int(rng.integers(1, config.n_groups))
    return _Event("snowball", integration, group, yy[keep], xx[keep],
                  charge[keep].astype(np.float32), radius)


class _Telegraph:
    """Two-state Markov offsets of the RTN pixels over all reads of the exposure."""

    def __init__(self, index: np.ndarray, amplitude: np.ndarray, states: np.ndarray,
                 shape: tuple[int, int]):
        self.index = index  # flat pixel indices
        self.amplitude = amplitude  # e-
        self.states = states  # bool (n_reads, n_pixels)
        self.shape = shape
        self.readable = np.ones_like(states)  # bool (n_reads, n_pixels): not saturated

    def _changes(self, first: int = 0, stop: int | None = None) -> np.ndarray:
        """bool ``(reads - 1, n_pixels)``: state changes between two readable reads."""
        states = self.states[first:stop]
        readable = self.readable[first:stop]
        return np.diff(states, axis=0) & readable[1:] & readable[:-1]

    def offsets(self, read: int) -> np.ndarray:
        """Offset (e-) of every pixel at one read, float32 ``(ny, nx)``."""
        out = np.zeros(self.shape, np.float32)
        out.reshape(-1)[self.index] = self.amplitude * self.states[read]
        return out

    def transitions(self) -> np.ndarray:
        """Number of state changes per RTN pixel over the exposure that the reads show
        (a change while the pixel is saturated shows nowhere)."""
        return np.count_nonzero(self._changes(), axis=0)

    def visit_snr(self, n_groups: int, read_noise: float) -> np.ndarray:
        """Best signal-to-noise ratio of one visit per RTN pixel (0 without any).

        A visit is a stay in one state with a transition on both sides, within one
        integration. Its SNR is that of the part of the visit no ramp without telegraph
        noise explains: what is left of the box of ``L`` reads (amplitude ``A``) after the
        best fit of a free line plus one lasting step (a faint cosmic ray), over white
        read noise, with the transition reads known (see :func:`visit_distinctness`). It is
        at most ``A sqrt(L (N - L) / N) / sigma_read``, the SNR with the slope known and
        no step to compete: no detector can see a visit far below it.
        """
        best = np.zeros(self.states.shape[1])
        for start in range(0, self.states.shape[0], n_groups):
            changed = self._changes(start, start + n_groups)
            for pixel in np.flatnonzero(np.count_nonzero(changed, axis=0) >= 2):
                reads = np.flatnonzero(changed[:, pixel]) + 1  # first read of each state
                distinct = max(visit_distinctness(int(a), int(b), n_groups)
                               for a, b in zip(reads[:-1], reads[1:], strict=True))
                snr = self.amplitude[pixel] * distinct / max(read_noise, 1e-9)
                best[pixel] = max(best[pixel], snr)
        return best


@functools.lru_cache(maxsize=4096)
def visit_distinctness(start: int, end: int, n_reads: int) -> float:
    """Norm of a unit box over reads ``start .. end - 1`` of ``n_reads`` left after the
    least-squares fit of an offset, a slope and the best single lasting step (a line and
    one jump explain any other part of it): the SNR of a visit of amplitude 1 over unit
    white noise."""
    j = np.arange(n_reads, dtype=float)
    box = ((j >= start) & (j < end)).astype(float)
    left = []
    for step in range(1, n_reads):
        design = np.stack([np.ones(n_reads), j, (j >= step).astype(float)], axis=1)
        q = np.linalg.qr(design)[0]
        left.append(np.linalg.norm(box - q @ (q.T @ box)))
    return float(min(left))


def _telegraph(config: RampSimConfig, rng: np.random.Generator) -> _Telegraph:
    """Pick RTN pixels and draw their state sequences (a two-state Markov chain)."""
    ny, nx = config.shape
    science = np.flatnonzero(config.camera.science_mask((ny, nx)).reshape(-1))
    n = rng.binomial(science.size, config.rtn_fraction)
    index = np.sort(rng.choice(science, n, replace=False))
    amplitude = rng.uniform(*config.rtn_amplitude, n).astype(np.float32)
    dwell = rng.uniform(*config.rtn_dwell, (2, n))  # mean groups in the low, high state
    n_reads = config.n_ints * config.n_groups
    states = np.empty((n_reads, n), bool)
    states[0] = rng.random(n) < dwell[1] / dwell.sum(axis=0)
    flips = rng.random((n_reads, n))
    for read in range(1, n_reads):
        leave = np.where(states[read - 1], 1 / dwell[1], 1 / dwell[0])
        states[read] = states[read - 1] ^ (flips[read] < leave)
    return _Telegraph(index, amplitude, states, (ny, nx))


class _Readout:
    """Non-linearity, IPC, pedestal, common-mode, row and read noise; DN out."""

    def __init__(self, config: RampSimConfig, rng: np.random.Generator):
        self.config = config
        camera = config.camera
        ny, nx = config.shape
        self.pedestal = camera.pedestal((ny, nx))
        self.pedestal += rng.normal(0, config.ktc_noise / config.gain, (ny, nx)).astype(
            np.float32)
        self.channel = np.minimum(np.arange(nx) * config.n_outputs // nx, config.n_outputs - 1)
        self.drift = np.zeros(config.n_outputs, np.float32)
        a = config.ipc_alpha
        self.kernel = np.array([[0, a, 0], [a, 1 - 4 * a, a], [0, a, 0]], np.float32)
        self.science = camera.science_mask((ny, nx))  # reference pixels see no IPC

    def read(self, charge: np.ndarray, rtn_offset: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
        """One read of the whole array: uint16 DN ``(ny, nx)``."""
        c = self.config
        ny, nx = charge.shape
        signal = charge * (1 - np.float32(c.nonlinearity / c.full_well) * charge)
        if c.ipc_alpha:
            signal = ndimage.convolve(signal, self.kernel, mode="constant") * self.science
        signal += rtn_offset
        self.drift += rng.normal(0, c.drift, c.n_outputs).astype(np.float32)
        rows = rng.standard_normal(ny).astype(np.float32)
        if c.row_noise_scale > 0:
            rows = ndimage.gaussian_filter1d(rows, c.row_noise_scale, mode="wrap")
            rows *= np.float32(1 / max(rows.std(), 1e-6))
        signal += rows[:, None] * np.float32(c.row_noise)
        signal += rng.standard_normal((ny, nx), np.float32) * np.float32(c.read_noise)
        dn = signal * np.float32(1 / c.gain) + self.pedestal + self.drift[self.channel]
        np.rint(dn, out=dn)
        return np.clip(dn, 0, c.saturation).astype(np.uint16)


def _truth(config: RampSimConfig, events: list[_Event], rtn: _Telegraph,
           saturated: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Truth mask, event ownership map, ambiguous RTN pixels and the event table."""
    ny, nx = config.shape
    mask = np.zeros((ny, nx), np.uint16)
    ids = np.full((ny, nx), -1, np.int32)
    a = config.ipc_alpha
    kernel = np.array([[0, a, 0], [a, 1 - 4 * a, a], [0, a, 0]], np.float32)
    rows = []
    snow = np.zeros((ny, nx), bool)
    peaks = []
    for event in sorted(events, key=lambda e: e.kind != "snowball"):
        footprint = _footprint(event, kernel, config)
        peaks.append((int(event.ys[event.charge.argmax()]), int(event.xs[event.charge.argmax()])))
        bit = KINDS[event.kind]
        if event.kind == "snowball":
            snow |= footprint
        else:
            footprint &= ~snow
        mask[footprint] |= bit
        ids[footprint] = len(rows)
        w = np.minimum(event.charge, config.full_well).astype(float)
        rows.append({"kind": event.kind, "int": event.integration, "group": event.group,
                     "x": float(np.average(event.xs, weights=w)),
                     "y": float(np.average(event.ys, weights=w)),
                     "electrons": float(event.charge.sum()), "radius": event.radius,
                     "n_pixels": int(footprint.sum()), "n_transitions": 0,
                     "visible": bool(footprint.any()), "overlapped": False,
                     "visit_snr": np.nan})
    for row, (n, (y, x)) in zip(rows, enumerate(peaks), strict=True):
        # the pixel of the event's largest deposit belongs to another event (a snowball
        # over it, or a cosmic ray of the same pixel listed later)
        row["overlapped"] = row["kind"] == "cr" and int(ids[y, x]) != n
    transitions = rtn.transitions()
    snr = rtn.visit_snr(config.n_groups, config.read_noise)
    flat = mask.reshape(-1)
    ambiguous = np.zeros((ny, nx), bool)
    for index, amplitude, n, visit in zip(rtn.index, rtn.amplitude, transitions, snr,
                                          strict=True):
        y, x = divmod(int(index), nx)
        if n >= 2:
            flat[index] |= RTN
            ids.reshape(-1)[index] = len(rows)
        elif n == 1:
            ambiguous[y, x] = True
        rows.append({"kind": "rtn", "int": 0, "group": 0, "x": float(x), "y": float(y),
                     "electrons": float(amplitude), "radius": 0.0, "n_pixels": 1,
                     "n_transitions": int(n), "visible": bool(n >= 2), "overlapped": False,
                     "visit_snr": float(visit)})
    mask[saturated] |= SATURATED
    table = pd.DataFrame(rows, columns=["kind", "int", "group", "x", "y", "electrons",
                                        "radius", "n_pixels", "n_transitions", "visible",
                                        "overlapped", "visit_snr"])
    return mask, ids, ambiguous, table


def _footprint(event: _Event, kernel: np.ndarray, config: RampSimConfig) -> np.ndarray:
    """Pixels whose signal the event moves by at least ``truth_min_electrons`` (IPC in)."""
    ny, nx = config.shape
    y0, y1 = max(event.ys.min() - 1, 0), min(event.ys.max() + 2, ny)
    x0, x1 = max(event.xs.min() - 1, 0), min(event.xs.max() + 2, nx)
    local = np.zeros((y1 - y0, x1 - x0), np.float32)
    np.add.at(local, (event.ys - y0, event.xs - x0),
              np.minimum(event.charge, config.full_well))
    local = ndimage.convolve(local, kernel, mode="constant")
    out = np.zeros((ny, nx), bool)
    out[y0:y1, x0:x1] = local >= config.truth_min_electrons
    return out


def write_simulated(sim: SimulatedRamp, out_dir: str | os.PathLike,
                    name: str = "ramp") -> dict[str, Path]:
    """Write ``NAME.fits`` (the ramp), ``NAME_truth.fits`` (mask; HDUs ``EVENTID`` and
    ``AMBIG``) and ``NAME_events.ecsv`` into ``out_dir``, atomically."""
    from astropy.io import fits

    from skytriage.io import atomic_path, write_ecsv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ramp": out / f"{name}.fits", "truth": out / f"{name}_truth.fits",
             "events": out / f"{name}_events.ecsv"}
    header = fits.Header()
    for key, value in sim.header.items():
        header[key] = value
    with atomic_path(paths["ramp"]) as tmp:
        data = sim.data[0] if sim.data.shape[0] == 1 else sim.data  # (groups, y, x) for one
        fits.PrimaryHDU(data, header=header).writeto(tmp)
    with atomic_path(paths["truth"]) as tmp:
        fits.HDUList([fits.PrimaryHDU(sim.truth_mask),
                      fits.ImageHDU(sim.event_ids, name="EVENTID"),
                      fits.ImageHDU(sim.ambiguous.astype(np.uint8), name="AMBIG")]).writeto(tmp)
    write_ecsv(paths["events"], sim.events)
    return paths


@dataclass
class Truth:
    """The truth of one simulated exposure, as :func:`read_truth` reads it back."""

    mask: np.ndarray
    event_ids: np.ndarray
    ambiguous: np.ndarray
    events: pd.DataFrame


def truth_of(sim: SimulatedRamp) -> Truth:
    """The truth part of a simulated exposure."""
    return Truth(sim.truth_mask, sim.event_ids, sim.ambiguous, sim.events)


def read_truth(ramp_path: str | os.PathLike) -> Truth:
    """Truth written by :func:`write_simulated` beside ``ramp_path`` (``NAME.fits``)."""
    from astropy.io import fits
    from astropy.table import Table

    from skytriage.io import astropy_errors

    ramp_path = Path(ramp_path)
    stem = ramp_path.name.removesuffix(".fits")
    path = ramp_path.with_name(f"{stem}_truth.fits")
    events = ramp_path.with_name(f"{stem}_events.ecsv")
    if not path.exists() or not events.exists():
        raise SkytriageInputError(ramp_path, f"no truth beside it ({path.name}, {events.name})")
    with astropy_errors(path), fits.open(path) as hdul:
        mask = np.asarray(hdul[0].data, np.uint16)
        ids = np.asarray(hdul["EVENTID"].data, np.int32)
        ambiguous = np.asarray(hdul["AMBIG"].data, bool)
    return Truth(mask, ids, ambiguous, Table.read(events, format="ascii.ecsv").to_pandas())
