"""Labelled sCMOS datasets for ``skytriage simulate frames``.

A dataset is one star field watched by one camera for a run of consecutive 5 s exposures.
Most frames are normal (seeing, sky level and pointing wander a little); the rest carry one
or two of the anomaly classes of DESIGN.md, in runs of consecutive frames where the cause
persists (a slew, a passing cloud, a dome edge creeping in) or alone (a satellite, a
readout glitch). The truth table says, for each frame, every class that applies, the
dominant one, how obvious it is (``strength`` 0..1), and the parameters that made it.

The three layers are public so that tests and notebooks can make one frame on demand:
:func:`draw_field` (a dataset's fixed sky and camera), :func:`plan_dataset` (a
:class:`FrameSpec` per frame) and :func:`render_frame` (a spec to a uint16 image).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.table import Table
from scipy.special import ndtr

from skytriage.io import write_csv, write_ecsv, write_fits, write_parquet
from skytriage.sky import (
    SCMOS,
    CloudScreen,
    Donut,
    Gaussian,
    Moffat,
    Streak,
    Trailed,
    glow,
    motion_blur,
    render_stars,
    sky_background,
    star_field,
    vignetting,
)
from skytriage.sky.psf import FWHM_PER_SIGMA, PSF

#: Anomaly classes, in the order used to break ties for the dominant label.
CLASSES = ("satellite", "slew", "tracking", "cloud", "obstruction", "defocus", "background",
           "camera")
#: Exposure time of every frame (s).
EXPTIME = 5.0
PSF_KINDS = ("moffat", "gaussian")
#: Shortest and longest run of consecutive frames per class.
RUN_LENGTH = {"satellite": (1, 1), "camera": (1, 1), "tracking": (1, 3), "defocus": (2, 4),
              "slew": (2, 5), "background": (2, 5), "obstruction": (3, 5), "cloud": (3, 6)}
#: Classes that may land on a frame that already carries another label.
OVERLAYS = ("satellite", "camera")
#: One turn of the class cycle: single-frame events come up more often than runs.
CYCLE = (*CLASSES, "satellite", "satellite", "camera")
CAMERA_FAULTS = ("banding", "hot_row", "hot_column", "glitch_offset", "glitch_shift",
                 "glitch_zeros", "glitch_garbage")
OBSTRUCTIONS = ("dome", "tree", "person")
#: Edges a shape can enter from: left = column 0, right = last column, bottom = row 0,
#: top = last row (as displayed with the origin at the lower left).
EDGES = ("left", "right", "bottom", "top")


@dataclass(frozen=True)
class Field:
    """What stays fixed through one dataset: the stars, the telescope, the camera, the site.

    Attributes
    ----------
    name : str
        Dataset (folder) name.
    shape : (int, int)
        Frame shape ``(ny, nx)`` (px).
    stars : astropy.table.Table
        True catalogue: ``x, y`` (px, before pointing offsets), ``flux`` (e- per exposure
        above the atmosphere and optics).
    camera : skytriage.sky.SCMOS
        The camera.
    fwhm, beta : float
        Median seeing FWHM (px) and Moffat beta.
    sky_level : float
        Median sky (e-/px per exposure).
    sky_gradient, sky_angle : float
        Normal sky gradient (fraction across the frame) and its direction (degrees).
    vignetting : float
        Light lost in the corners (fraction).
    obscuration : float
        Central obscuration of the pupil (fraction of the radius), seen in donuts.
    ra, dec : float
        Pointing (degrees).
    start : datetime.datetime
        Start of the first exposure (UTC).
    cadence : float
        Seconds between the starts of consecutive exposures.
    psf_kind : str
        ``"moffat"`` (with ``beta``) or ``"gaussian"`` seeing profile.
    """

    name: str
    shape: tuple[int, int]
    stars: Table
    camera: SCMOS
    fwhm: float
    beta: float
    sky_level: float
    sky_gradient: float
    sky_angle: float
    vignetting: float
    obscuration: float
    ra: float
    dec: float
    start: datetime
    cadence: float
    psf_kind: str = "moffat"

    @property
    def size(self) -> int:
        """Shorter side of the frame (px)."""
        return min(self.shape)

    @property
    def noise(self) -> float:
        """Per-pixel noise on the normal sky (e-)."""
        return math.sqrt(self.sky_level + self.camera.read_noise**2)


@dataclass
class FrameSpec:
    """Everything that makes one frame; the defaults describe a normal frame.

    Attributes
    ----------
    fwhm, beta : float
        Seeing FWHM (px) and Moffat beta of this frame.
    sky_level : float
        Natural sky level (e-/px), before any ``background`` anomaly.
    offset_x, offset_y : float
        Pointing offset of the whole field (px).
    trails : tuple
        Satellite trails ``(x0, y0, x1, y1, peak, fwhm)``: end points beyond the frame (px),
        surface brightness on the trail's axis (e-/px) and width (px).
    slew_length, slew_angle : float
        Length (px) and direction (degrees) every star is streaked over; 0 = no slew.
    tracking_length, tracking_angle : float
        Elongation (px) and direction (degrees) of a tracking error; 0 = none.
    cloud_depth, cloud_emission : float
        Largest fractional attenuation, and light the thickest cloud adds (e-/px).
    cloud_scale, cloud_coverage, cloud_shift_x, cloud_shift_y, cloud_seed
        The cloud screen (px, fraction, px, px, seed), see :class:`skytriage.sky.CloudScreen`.
    obstruction_kind, obstruction_edge : str
        ``dome``/``tree``/``person`` and the edge it enters from.
    obstruction_reach, obstruction_blur, obstruction_scatter, obstruction_seed
        How far it reaches into the frame (px), edge softness (px), light scattered off it
        (e-/px) and the seed of its outline.
    defocus_kind : str
        ``donut`` or ``soft``.
    donut_radius, defocus_factor : float
        Outer radius of the donut (px); FWHM multiplier of a soft defocus.
    background_kind : str
        ``twilight`` (strong gradient) or ``moon`` (glow from outside the frame).
    background_factor, background_angle : float
        Mean sky relative to normal; direction the light comes from (degrees).
    camera_kind : str
        One of :data:`CAMERA_FAULTS`.
    camera_amplitude, camera_start, camera_extent
        Offset (ADU; px for ``glitch_shift``), first row or column, number of rows.
    strengths : dict
        Class -> strength (0..1) of every anomaly in the frame.
    """

    fwhm: float
    beta: float
    sky_level: float
    offset_x: float = 0.0
    offset_y: float = 0.0
    trails: tuple = ()
    slew_length: float = 0.0
    slew_angle: float = 0.0
    tracking_length: float = 0.0
    tracking_angle: float = 0.0
    cloud_depth: float = 0.0
    cloud_emission: float = 0.0
    cloud_scale: float = 0.0
    cloud_coverage: float = 0.0
    cloud_shift_x: float = 0.0
    cloud_shift_y: float = 0.0
    cloud_seed: int = 0
    obstruction_kind: str = ""
    obstruction_edge: str = ""
    obstruction_reach: float = 0.0
    obstruction_blur: float = 0.0
    obstruction_scatter: float = 0.0
    obstruction_seed: int = 0
    defocus_kind: str = ""
    donut_radius: float = 0.0
    defocus_factor: float = 1.0
    background_kind: str = ""
    background_factor: float = 1.0
    background_angle: float = 0.0
    camera_kind: str = ""
    camera_amplitude: float = 0.0
    camera_start: int = 0
    camera_extent: int = 0
    strengths: dict = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Every class in the frame, sorted; ``["normal"]`` for a normal frame."""
        return sorted(self.strengths) or ["normal"]

    @property
    def label(self) -> str:
        """The dominant class: highest strength, ties broken by :data:`CLASSES` order."""
        if not self.strengths:
            return "normal"
        return max(CLASSES, key=lambda c: (self.strengths.get(c, -1.0), -CLASSES.index(c)))

    @property
    def strength(self) -> float:
        """How obvious the dominant anomaly is (0..1); 0 for a normal frame."""
        return max(self.strengths.values(), default=0.0)


# --------------------------------------------------------------------------- fields


def draw_field(name: str, shape: tuple[int, int], rng: np.random.Generator, *,
               psf: str = "moffat", fwhm_range: tuple[float, float] = (1.8, 3.8)) -> Field:
    """Draw a dataset's star field, telescope, camera and night within realistic ranges.

    Parameters
    ----------
    name : str
        Dataset name.
    shape : (int, int)
        Frame shape ``(ny, nx)`` (px).
    rng : numpy.random.Generator
        Source of randomness.
    psf : {"moffat", "gaussian"}
        Seeing profile of every star.
    fwhm_range : (float, float)
        Range of the median seeing FWHM (px).

    Returns
    -------
    Field
    """
    if psf not in PSF_KINDS:
        raise ValueError(f"psf must be one of {PSF_KINDS}, not {psf!r}")
    ny, nx = shape
    density = math.exp(rng.uniform(math.log(200), math.log(1500)))  # stars per Mpix
    stars = star_field(shape, int(rng.poisson(density * ny * nx / 1e6)), rng,
                       fmin=rng.uniform(60, 150), fmax=2e6, alpha=rng.uniform(2.2, 2.6),
                       margin=20)
    read_noise = rng.uniform(1.0, 3.5)
    camera = SCMOS(gain=round(rng.uniform(0.3, 1.2), 3), read_noise=round(read_noise, 3),
                   bias=float(rng.integers(100, 1000)), full_well=rng.uniform(2e4, 5.1e4),
                   dark_current=rng.uniform(0.002, 0.02), row_noise=0.15 * read_noise,
                   column_noise=0.08 * read_noise, column_fpn=rng.uniform(0.3, 1.5),
                   seed=int(rng.integers(2**31)))
    day = datetime(2025, 1, 1, 20, tzinfo=UTC) + timedelta(days=int(rng.integers(365)))
    return Field(name=name, shape=(ny, nx), stars=stars, camera=camera,
                 fwhm=rng.uniform(*fwhm_range), beta=rng.uniform(2.5, 4.5),
                 sky_level=math.exp(rng.uniform(math.log(80), math.log(600))),
                 sky_gradient=rng.uniform(0, 0.08), sky_angle=rng.uniform(0, 360),
                 vignetting=rng.uniform(0.05, 0.3), obscuration=rng.uniform(0.25, 0.45),
                 ra=rng.uniform(0, 360), dec=math.degrees(math.asin(rng.uniform(-0.6, 1))),
                 start=day + timedelta(seconds=rng.uniform(0, 7 * 3600)),
                 cadence=round(EXPTIME + rng.uniform(0.8, 3.0), 3), psf_kind=psf)


# --------------------------------------------------------------------------- planning


def plan_dataset(fld: Field, n_frames: int, rng: np.random.Generator,
                 pending: deque[str]) -> list[FrameSpec]:
    """Frame specs for one dataset: natural variation, then anomaly events.

    Parameters
    ----------
    fld : Field
        The dataset's field.
    n_frames : int
        Number of frames.
    rng : numpy.random.Generator
        Source of randomness.
    pending : collections.deque of str
        Classes still to place, shared across datasets so that every class comes up in
        turn; refilled with a random permutation of :data:`CYCLE` when empty. A class
        that finds no room stays at the front for the next dataset.

    Returns
    -------
    list of FrameSpec
        One per frame. Events are added until 25-35 % of the frames are anomalous;
        satellites and camera faults sometimes land on already anomalous frames.
    """
    specs = _natural_frames(fld, n_frames, rng)
    quota = round(rng.uniform(0.25, 0.35) * n_frames)
    busy = np.zeros(n_frames, dtype=bool)
    for _ in range(10 * n_frames):
        if busy.sum() >= quota:
            break
        if not pending:
            pending.extend(rng.permutation(CYCLE).tolist())
        frames = _place(pending[0], busy, quota, rng)
        if frames is None:
            break
        cls = pending.popleft()
        _EVENTS[cls]([specs[k] for k in frames], fld, rng)
        busy[frames] = True
    return specs


def _natural_frames(fld: Field, n: int, rng: np.random.Generator) -> list[FrameSpec]:
    """Normal frames: seeing wanders (AR(1), ~4 %), sky drifts, pointing random-walks."""
    seeing = np.zeros(n)
    for k in range(1, n):
        seeing[k] = 0.8 * seeing[k - 1] + rng.normal(0, 0.04)
    trend = rng.uniform(-0.1, 0.1) * np.arange(n) / max(n, 1)
    sky = fld.sky_level * (1 + trend + rng.normal(0, 0.01, n))
    offsets = np.cumsum(rng.normal(0, 0.3, (n, 2)), axis=0)
    return [FrameSpec(fwhm=float(fld.fwhm * math.exp(seeing[k])), beta=fld.beta,
                      sky_level=float(sky[k]), offset_x=float(offsets[k, 0]),
                      offset_y=float(offsets[k, 1])) for k in range(n)]


def _place(cls: str, busy: np.ndarray, quota: int,
           rng: np.random.Generator) -> np.ndarray | None:
    """Frames for one event of ``cls``, or None when there is no free run long enough."""
    lo, hi = RUN_LENGTH[cls]
    if cls in OVERLAYS and busy.any() and rng.random() < 0.3:
        return rng.choice(np.flatnonzero(busy), 1)
    length = min(int(rng.integers(lo, hi + 1)), max(lo, quota - int(busy.sum())))
    free = np.convolve(~busy, np.ones(length, dtype=int), mode="valid") == length
    starts = np.flatnonzero(free)
    if starts.size == 0:
        return None
    return int(rng.choice(starts)) + np.arange(length)


def _satellite(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """One to three trails across the frame, from barely visible (0.5 sigma) to glaring."""
    ny, nx = fld.shape
    diag = math.hypot(ny, nx)
    for spec in run:
        s = rng.uniform(0.05, 1)
        peak = fld.noise * 10 ** (-0.3 + 1.7 * s)
        trails = []
        for i in range(int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))):
            cx, cy = rng.uniform(0, nx), rng.uniform(0, ny)
            a = math.radians(rng.uniform(0, 180))
            dx, dy = diag * math.cos(a), diag * math.sin(a)
            brightness = peak if i == 0 else peak * rng.uniform(0.2, 1)
            trails.append((cx - dx, cy - dy, cx + dx, cy + dy, brightness,
                           spec.fwhm * rng.uniform(1.0, 1.6)))
        spec.trails = tuple(trails)
        spec.strengths["satellite"] = s


def _slew(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """Every star streaks over 5-20 % of the frame (>= 15 px), in nearly one direction."""
    angle = rng.uniform(0, 360)
    for spec in run:
        s = rng.uniform(0.4, 1)
        spec.slew_length = max(15.0, fld.size * 0.02 * 10**s)
        spec.slew_angle = (angle + rng.normal(0, 3)) % 360
        spec.strengths["slew"] = s


def _tracking(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """Stars elongated by 2-10 px in one direction."""
    angle, s = rng.uniform(0, 180), rng.uniform(0.1, 1)
    for spec in run:
        sk = float(np.clip(s * rng.uniform(0.8, 1.2), 0.05, 1))
        spec.tracking_length = 2 + 8 * sk
        spec.tracking_angle = angle
        spec.strengths["tracking"] = sk


def _cloud(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """A cloud bank that thickens then thins while it drifts across the field."""
    s = rng.uniform(0.3, 1)
    seed, scale = int(rng.integers(2**31)), fld.size * rng.uniform(0.2, 0.6)
    coverage = rng.uniform(0.4, 0.8)
    speed, direction = fld.size * rng.uniform(0.03, 0.1), math.radians(rng.uniform(0, 360))
    t0 = rng.uniform(0, 10)
    for k, spec in enumerate(run):
        sk = max(0.1, s * math.sin(math.pi * (k + 1) / (len(run) + 1)))
        spec.cloud_depth, spec.cloud_emission = 0.9 * sk, 1.5 * sk * spec.sky_level
        spec.cloud_scale, spec.cloud_coverage, spec.cloud_seed = scale, coverage, seed
        spec.cloud_shift_x = (t0 + k) * speed * math.cos(direction)
        spec.cloud_shift_y = (t0 + k) * speed * math.sin(direction)
        spec.strengths["cloud"] = sk


def _obstruction(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """A dome edge, tree or person creeping in from one edge, further every frame."""
    kind, edge = str(rng.choice(OBSTRUCTIONS)), str(rng.choice(EDGES))
    seed = int(rng.integers(2**31))
    reach = np.linspace(fld.size * rng.uniform(0.03, 0.1), fld.size * rng.uniform(0.15, 0.6),
                        len(run))
    blur, scatter = 1 + fld.size * rng.uniform(0.003, 0.02), rng.uniform(0.02, 0.2)
    for spec, r in zip(run, reach, strict=True):
        spec.obstruction_kind, spec.obstruction_edge = kind, edge
        spec.obstruction_reach, spec.obstruction_blur = float(r), blur
        spec.obstruction_scatter, spec.obstruction_seed = scatter * spec.sky_level, seed
        spec.strengths["obstruction"] = float(np.clip(r / (0.4 * fld.size), 0.05, 1))


def _defocus(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """Donuts (strength >= 0.5) or a softened PSF (subtle)."""
    s = rng.uniform(0.1, 1)
    for spec in run:
        sk = float(np.clip(s * rng.uniform(0.85, 1.15), 0.05, 1))
        if s >= 0.5:
            spec.defocus_kind, spec.donut_radius = "donut", spec.fwhm * (1 + 4 * sk)
        else:
            spec.defocus_kind, spec.defocus_factor = "soft", 1 + 1.6 * sk
        spec.strengths["defocus"] = sk


def _background(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """Twilight brightening over the run, or moonlight: sky 2-10 times normal."""
    kind = str(rng.choice(["twilight", "moon"]))
    full, angle = 2 + 8 * rng.uniform(0.2, 1), rng.uniform(0, 360)
    for k, spec in enumerate(run):
        ramp = (k + 1) / len(run) if kind == "twilight" else 1.0
        factor = 1 + (full - 1) * ramp
        spec.background_kind, spec.background_factor = kind, factor
        spec.background_angle = angle
        spec.strengths["background"] = float(np.clip(math.log10(factor), 0.05, 1))


def _camera(run: list[FrameSpec], fld: Field, rng: np.random.Generator) -> None:
    """Banding, a hot row or column, or a readout glitch over a block of rows."""
    ny, nx = fld.shape
    for spec in run:
        kind = str(rng.choice(CAMERA_FAULTS, p=[0.3, 0.15, 0.15, 0.15, 0.1, 0.08, 0.07]))
        s, amplitude = _camera_fault_size(kind, fld.noise / fld.camera.gain, nx, rng)
        spec.camera_kind, spec.camera_amplitude = kind, amplitude
        spec.camera_start = int(rng.integers(nx if kind == "hot_column" else ny))
        spec.camera_extent = 1 if kind in ("banding", "hot_row", "hot_column") else int(
            max(1, ny * rng.uniform(0.05, 0.4)))
        spec.strengths["camera"] = s


def _camera_fault_size(kind: str, noise_adu: float, nx: int,
                       rng: np.random.Generator) -> tuple[float, float]:
    """Strength and amplitude (ADU, or px for a shift) of a camera fault.

    Banding and hot lines range from subtle (a fraction of the pixel noise ``noise_adu``
    per row, or a line a few sigma high) to glaring; glitches are obvious.
    """
    if kind == "banding":
        s = rng.uniform(0.2, 1)
        return s, noise_adu * (0.15 + s)
    if kind in ("hot_row", "hot_column"):
        s = rng.uniform(0.2, 1)
        return s, noise_adu * (1 + 20 * s)
    if kind == "glitch_offset":
        s = rng.uniform(0.5, 1)
        return s, noise_adu * (2 + 20 * s)
    if kind == "glitch_shift":
        return 1.0, float(rng.integers(5, max(6, nx // 4)))
    return 1.0, 0.0


_EVENTS: dict[str, Callable[[list[FrameSpec], Field, np.random.Generator], None]] = {
    "satellite": _satellite, "slew": _slew, "tracking": _tracking, "cloud": _cloud,
    "obstruction": _obstruction, "defocus": _defocus, "background": _background,
    "camera": _camera}


# --------------------------------------------------------------------------- rendering


def render_frame(fld: Field, spec: FrameSpec, rng: np.random.Generator
                 ) -> tuple[np.ndarray, dict[str, float]]:
    """Render one frame.

    Parameters
    ----------
    fld : Field
        The dataset's field.
    spec : FrameSpec
        What this frame shows.
    rng : numpy.random.Generator
        Source of the frame's noise.

    Returns
    -------
    (numpy.ndarray, dict)
        The uint16 sCMOS frame (ADU), shape ``fld.shape``, and measured truth:
        ``cloud_attenuation`` (mean fraction of light the clouds took) and
        ``obstruction_fraction`` (fraction of the frame covered).
    """
    signal = _sky(fld, spec)
    _add_stars(signal, fld, spec)
    for trail in spec.trails:
        _add_trail(signal, *trail)
    info = {"cloud_attenuation": 0.0, "obstruction_fraction": 0.0}
    if spec.cloud_depth:
        cover = CloudScreen(spec.cloud_scale, spec.cloud_coverage, seed=spec.cloud_seed).cover(
            fld.shape, (spec.cloud_shift_x, spec.cloud_shift_y))
        signal *= 1 - np.float32(spec.cloud_depth) * cover
        signal += np.float32(spec.cloud_emission) * cover
        info["cloud_attenuation"] = float(spec.cloud_depth * cover.mean())
    if spec.obstruction_kind:
        occ = obstruction_map(fld.shape, spec)
        signal *= 1 - occ
        signal += np.float32(spec.obstruction_scatter) * occ
        info["obstruction_fraction"] = float(occ.mean())
    signal *= vignetting(fld.shape, fld.vignetting)
    image = fld.camera.expose(signal, rng, EXPTIME)
    if spec.camera_kind:
        image = _camera_fault(image, spec, rng)
    return image, info


def frame_psf(fld: Field, spec: FrameSpec) -> PSF:
    """The PSF of a still star: Moffat, donut or softened when defocused, trailed when the
    tracking fails (a slew is applied afterwards to the whole star image)."""
    fwhm = spec.fwhm * spec.defocus_factor
    if spec.donut_radius:
        psf: PSF = Donut(spec.donut_radius, fld.obscuration, blur=fwhm / FWHM_PER_SIGMA)
    elif fld.psf_kind == "gaussian":
        psf = Gaussian(fwhm)
    else:
        psf = Moffat(fwhm, spec.beta)
    if spec.tracking_length:
        return Trailed(psf, spec.tracking_length, spec.tracking_angle)
    return psf


def _add_stars(signal: np.ndarray, fld: Field, spec: FrameSpec) -> None:
    """Add the field's stars (e-) at this frame's pointing; streak them during a slew."""
    x = np.asarray(fld.stars["x"]) + spec.offset_x
    y = np.asarray(fld.stars["y"]) + spec.offset_y
    flux, psf = np.asarray(fld.stars["flux"]), frame_psf(fld, spec)
    if not spec.slew_length:
        render_stars(signal, x, y, flux, psf)
        return
    # every star moves the same way: render them still, then smear the star image
    a = math.radians(spec.slew_angle)
    stars = np.zeros_like(signal)
    render_stars(stars, x + 0.5 * spec.slew_length * math.cos(a),
                 y + 0.5 * spec.slew_length * math.sin(a), flux, psf)
    signal += motion_blur(stars, spec.slew_length, spec.slew_angle)


def _sky(fld: Field, spec: FrameSpec) -> np.ndarray:
    """Sky light (e-/px, float32) including a twilight or moonlight anomaly."""
    ny, nx = fld.shape
    if spec.background_kind == "twilight":
        return sky_background(fld.shape, spec.sky_level * spec.background_factor,
                              gradient=0.6, angle=spec.background_angle)
    sky = sky_background(fld.shape, spec.sky_level, gradient=fld.sky_gradient,
                         angle=fld.sky_angle)
    if spec.background_kind == "moon":
        diag, a = math.hypot(ny, nx), math.radians(spec.background_angle)
        light = glow(fld.shape, 1.0, (nx - 1) / 2 + 0.8 * diag * math.cos(a),
                     (ny - 1) / 2 + 0.8 * diag * math.sin(a), 0.6 * diag)
        light *= np.float32((spec.background_factor - 1) * spec.sky_level / light.mean())
        sky += light
    return sky


def _add_trail(signal: np.ndarray, x0: float, y0: float, x1: float, y1: float, peak: float,
               fwhm: float) -> None:
    """Add a satellite trail of surface brightness ``peak`` (e-/px on its axis)."""
    length = math.hypot(x1 - x0, y1 - y0)
    psf = Streak(length, math.degrees(math.atan2(y1 - y0, x1 - x0)), fwhm)
    flux = peak * length * math.sqrt(2 * math.pi) * psf.sigma
    render_stars(signal, [(x0 + x1) / 2], [(y0 + y1) / 2], [flux], psf, threshold=0.2)


def obstruction_map(shape: tuple[int, int], spec: FrameSpec) -> np.ndarray:
    """Opacity (0..1, float32) of a dome edge, tree or person entering from an edge.

    The outline is a signed distance ``sd`` (px, > 0 inside the shape) from a boundary at
    ``spec.obstruction_reach`` px from the edge; the opacity is ``Phi(sd / blur)``, the
    out-of-focus edge of a near object.
    """
    depth, along, span = _edge_coords(shape, spec.obstruction_edge)
    rng = np.random.default_rng(spec.obstruction_seed)
    reach = np.float32(spec.obstruction_reach)
    if spec.obstruction_kind == "dome":
        a0, radius = rng.uniform(0, span), span * rng.uniform(1.5, 4)
        sd = reach - np.square(along - np.float32(a0)) / np.float32(2 * radius) - depth
    elif spec.obstruction_kind == "tree":
        sd = reach * (0.65 + 0.35 * _jagged(along, span, rng)) - depth
    else:
        sd = _person(depth, along, reach, rng.uniform(0.25, 0.75) * span)
    return ndtr(sd / np.float32(spec.obstruction_blur)).astype(np.float32)


def _edge_coords(shape: tuple[int, int], edge: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Distance from ``edge`` and position along it (px, broadcastable float32), edge length."""
    ny, nx = shape
    yy = np.arange(ny, dtype=np.float32)[:, None]
    xx = np.arange(nx, dtype=np.float32)[None, :]
    return {"left": (xx, yy, ny), "right": (nx - 1 - xx, yy, ny),
            "bottom": (yy, xx, nx), "top": (ny - 1 - yy, xx, nx)}[edge]


def _jagged(along: np.ndarray, span: int, rng: np.random.Generator) -> np.ndarray:
    """A rough outline in -1..1 along the edge: random sines with 1/f amplitudes."""
    freq = rng.integers(1, 40, 24)
    amp, phase = 1.0 / freq, rng.uniform(0, 2 * np.pi, freq.size)
    wave = sum(a * np.sin(2 * np.pi * f * along / span + p)
               for a, f, p in zip(amp, freq, phase, strict=True))
    return (wave / np.abs(wave).max()).astype(np.float32)


def _person(depth: np.ndarray, along: np.ndarray, reach: float, a0: float) -> np.ndarray:
    """Signed distance (px) to a head-and-shoulders silhouette standing on the edge."""
    head = 0.18 * reach
    da = along - np.float32(a0)
    half_a, half_d = 2.6 * head, max(reach - 2 * head, 1.0)
    q = np.sqrt(np.square(da / np.float32(half_a)) + np.square(depth / np.float32(half_d)))
    body = (1 - q) * np.float32(min(half_a, half_d))
    skull = head - np.sqrt(np.square(da) + np.square(depth - np.float32(reach - head)))
    return np.maximum(body, skull)


def _camera_fault(image: np.ndarray, spec: FrameSpec, rng: np.random.Generator) -> np.ndarray:
    """Apply ``spec.camera_kind`` to a uint16 frame; returns a new uint16 frame."""
    img = image.astype(np.int32)
    ny, nx = img.shape
    amp, rows = spec.camera_amplitude, slice(spec.camera_start,
                                             spec.camera_start + spec.camera_extent)
    kind = spec.camera_kind
    if kind == "banding":
        img += np.rint(rng.normal(0, amp, ny)).astype(np.int32)[:, None]
    elif kind == "hot_column":
        img[:, spec.camera_start] += round(amp)
    elif kind in ("hot_row", "glitch_offset"):
        img[rows] += round(amp)
    elif kind == "glitch_shift":
        img[rows] = np.roll(img[rows], int(amp), axis=1)
    elif kind == "glitch_zeros":
        img[rows] = 0
    elif kind == "glitch_garbage":
        img[rows] = rng.integers(0, 65536, img[rows].shape)
    return np.clip(img, 0, 65535).astype(np.uint16)


# --------------------------------------------------------------------------- writing


def simulate_frames(out_dir: str | os.PathLike, *, n_datasets: int = 3,
                    frames_per_dataset: int = 40, shape: tuple[int, int] = (1024, 1024),
                    seed: int = 0, psf: str = "moffat",
                    fwhm_range: tuple[float, float] = (1.8, 3.8),
                    progress: Callable[[int, int], object] | None = None) -> pd.DataFrame:
    """Write labelled sCMOS datasets and their truth table.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder (created).
    n_datasets : int
        Number of datasets (fields), named ``field_000, field_001, ...``.
    frames_per_dataset : int
        Consecutive frames per dataset.
    shape : (int, int)
        Frame shape ``(ny, nx)`` (px), up to the full 6388 x 9576 sensor.
    seed : int
        The same seed gives the same pixels.
    psf : {"moffat", "gaussian"}
        Seeing profile (to test a model on PSFs it did not train on).
    fwhm_range : (float, float)
        Range of each field's median seeing FWHM (px).
    progress : callable, optional
        ``progress(n_done, n_total)`` after every frame.

    Returns
    -------
    pandas.DataFrame
        The truth table, one row per frame (also written to ``truth.csv`` and
        ``truth.parquet``): ``path`` (relative to ``out_dir``), ``dataset``, ``frame``
        (0-based), ``label``, ``labels`` (``;``-separated, sorted), ``strength`` (0..1),
        ``date_obs``, the camera (``gain`` e-/ADU, ``read_noise`` e-, ``bias`` ADU),
        ``n_stars``, every :class:`FrameSpec` field but the seeds (trails summarised as
        ``n_trails``, ``trail_peak`` e-/px and ``trails`` ``"x0 y0 x1 y1 peak fwhm;..."``)
        and the measured ``cloud_attenuation`` and ``obstruction_fraction``.

    Notes
    -----
    Frames are uint16 FITS (BITPIX 16, BZERO 32768) with GAIN, RDNOISE, EXPTIME,
    DATE-OBS, INSTRUME, OBJECT and pointing; no truth in the header. Each dataset folder
    also holds ``stars.ecsv``, the true catalogue (x, y px before pointing offsets; flux e-).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = (int(shape[0]), int(shape[1]))
    pending: deque[str] = deque()
    provenance = {"command": "skytriage simulate frames",
                  "parameters": {"seed": seed, "n_datasets": n_datasets,
                                 "frames_per_dataset": frames_per_dataset, "shape": shape,
                                 "psf": psf, "fwhm_range": fwhm_range}}
    plan_rng = np.random.default_rng([seed, 0])
    total, rows = n_datasets * frames_per_dataset, []
    for d in range(n_datasets):
        fld = draw_field(f"field_{d:03d}", shape, np.random.default_rng([seed, 1, d]),
                         psf=psf, fwhm_range=fwhm_range)
        specs = plan_dataset(fld, frames_per_dataset, plan_rng, pending)
        (out / fld.name).mkdir(exist_ok=True)
        write_ecsv(out / fld.name / "stars.ecsv", fld.stars)
        for k, spec in enumerate(specs):
            image, info = render_frame(fld, spec, np.random.default_rng([seed, 2, d, k]))
            relpath = f"{fld.name}/frame_{k:04d}.fits"
            date_obs = fld.start + timedelta(seconds=k * fld.cadence)
            write_fits(out / relpath, image, _header(fld, date_obs), provenance=provenance)
            rows.append(_truth_row(relpath, fld, k, spec, info, date_obs))
            if progress is not None:
                progress(len(rows), total)
    truth = pd.DataFrame(rows)
    write_csv(out / "truth.csv", truth)
    write_parquet(out / "truth.parquet", truth)
    return truth


def _header(fld: Field, date_obs: datetime) -> fits.Header:
    """The header a real sCMOS acquisition would write: no truth."""
    header = fits.Header()
    header["IMAGETYP"] = "LIGHT"
    header["OBJECT"] = fld.name
    header["TELESCOP"] = "SKYTRIAGE-SIM"
    header["INSTRUME"] = "SIM-SCMOS"
    header["DATE-OBS"] = (date_obs.replace(tzinfo=None).isoformat(timespec="milliseconds"),
                          "start of exposure (UTC)")
    header["EXPTIME"] = (EXPTIME, "exposure time (s)")
    header["GAIN"] = (fld.camera.gain, "e-/ADU")
    header["RDNOISE"] = (fld.camera.read_noise, "read noise (e-)")
    header["SATURATE"] = (fld.camera.saturation, "saturation level (ADU)")
    header["RA"] = (round(fld.ra, 5), "pointing (deg)")
    header["DEC"] = (round(fld.dec, 5), "pointing (deg)")
    header["BUNIT"] = "ADU"
    return header


def _truth_row(relpath: str, fld: Field, k: int, spec: FrameSpec, info: dict[str, float],
               date_obs: datetime) -> dict:
    """One row of the truth table."""
    params = {name: value for name, value in dataclasses.asdict(spec).items()
              if name not in ("trails", "strengths") and not name.endswith("_seed")}
    return {"path": relpath, "dataset": fld.name, "frame": k, "label": spec.label,
            "labels": ";".join(spec.labels), "strength": round(spec.strength, 4),
            "date_obs": date_obs.replace(tzinfo=None).isoformat(timespec="milliseconds"),
            "gain": fld.camera.gain, "read_noise": fld.camera.read_noise,
            "bias": fld.camera.bias, "n_stars": len(fld.stars), "psf": fld.psf_kind,
            "n_trails": len(spec.trails),
            "trail_peak": max((t[4] for t in spec.trails), default=0.0),
            "trails": ";".join(" ".join(f"{v:.2f}" for v in t) for t in spec.trails),
            **params, **info}
