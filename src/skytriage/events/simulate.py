"""Labelled Mini-EUSO-like sessions: (T, 48, 48) cubes of counts per frame with truth.

A session is one pass of a UV telescope on the ISS over one kind of scene:

- ``ocean``: dark sea, airglow, a few ship flashers, storms far away (ELVES, lightning);
- ``cities``: city lights sliding past, flashers (airports, lighthouses), a few clouds;
- ``clouds``: thunderstorms under clouds: lightning, ELVES, bright cloud tops;
- ``moonlit``: ten times the background, clouds and land lit by the Moon.

The ground (airglow, cities, clouds, storms and flashers) slides across the focal surface
at the ISS's apparent speed, 0.6-1.6 px/s in a random direction, which nothing in the
output states (only the truth keeps it); a second cloud layer drifts a little on its own.
On top come the transients, in detector coordinates: meteors (spots of 3-4 px, PSF sigma
0.55-0.8 px, drifting at 2-16 px/s for 0.5-3 s with a rise-and-fall light curve, peak
pixel signal 3-40 sigma of the local noise), lightning (1-4 strokes of 1-4 frames, 2-7 px
wide, 40-3000 counts), ELVES (rings expanding by 8-20 px per frame over 1-3 frames),
single-frame cosmic-ray hits (1-3 px) and flashers (point sources on the ground pulsing
for 1-2 frames every 0.3-1.5 s). Counts are Poisson draws of the expected counts, times a
flat-field residual of ~2 % per pixel.

Truth: ``event_ids`` (T, 48, 48) int32, 0 for nothing, else the 1-based row of the event
table whose expected signal is largest in that pixel-frame, where that signal is at least
:data:`MASK_SIGMA` times the expected Poisson noise; the meteor mask is the pixel-frames
of meteor events. The event table gives kind, t_start, t_end (0-based frames, inclusive),
x, y (mean position), direction (degrees from +x towards +y), speed (px/s) and the peak
signal (counts per frame in the brightest pixel).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.special import ndtr

from skytriage.io import write_ecsv, write_fits
from skytriage.sky import CloudScreen, poisson

#: Frame time of Mini-EUSO D3 data (s).
FRAME_TIME = 0.04096
#: Focal surface in pixels (rows, columns).
SHAPE = (48, 48)
SESSION_KINDS = ("ocean", "cities", "clouds", "moonlit")
EVENT_KINDS = ("meteor", "lightning", "elve", "cosmic_ray", "flasher")
#: A pixel-frame belongs to an event where its expected signal reaches this many sigma.
MASK_SIGMA = 2.0

CUBE_NAME = "cube.fits"
MASK_NAME = "truth_mask.fits"
IDS_NAME = "truth_ids.fits"
EVENTS_NAME = "truth_events.ecsv"

# Per session kind: background (counts/frame), events per 1000 frames, flashers, cities.
_SCENES = {
    "ocean": dict(level=(2.0, 4.0), meteors=4.0, lightning=0.8, elves=0.8, cosmic=30.0,
                  flashers=(1, 2), cities=(0, 0), clouds=0.15),
    "cities": dict(level=(2.5, 5.0), meteors=4.0, lightning=0.3, elves=0.3, cosmic=30.0,
                   flashers=(2, 4), cities=(4, 9), clouds=0.3),
    "clouds": dict(level=(3.0, 6.0), meteors=4.0, lightning=5.0, elves=2.0, cosmic=30.0,
                   flashers=(0, 1), cities=(1, 3), clouds=0.6),
    "moonlit": dict(level=(20.0, 40.0), meteors=4.0, lightning=0.8, elves=0.4, cosmic=30.0,
                    flashers=(0, 2), cities=(1, 4), clouds=0.5),
}


@dataclass
class Session:
    """One simulated session.

    Attributes
    ----------
    counts : ndarray of float32, shape (T, 48, 48)
        Counts per pixel per frame.
    event_ids : ndarray of int32, shape (T, 48, 48)
        0, or the 1-based row in ``events`` that dominates the pixel-frame.
    events : pandas.DataFrame
        ``id, kind, t_start, t_end, x, y, direction, speed, peak``.
    background : ndarray of float32, shape (T, 48, 48)
        Expected counts of the scene without transients.
    kind, seed : str, int
        Scene and seed.
    frame_time : float
        Seconds per frame.
    ground_velocity : (float, float)
        Apparent motion of the ground (vx, vy) in px/s: truth only.
    """

    counts: np.ndarray
    event_ids: np.ndarray
    events: pd.DataFrame
    background: np.ndarray
    kind: str
    seed: int
    frame_time: float = FRAME_TIME
    ground_velocity: tuple[float, float] = (0.0, 0.0)
    name: str = field(default="")

    @property
    def meteor_mask(self) -> np.ndarray:
        """Pixel-frames of meteors, bool (T, 48, 48)."""
        meteor_ids = self.events.loc[self.events["kind"] == "meteor", "id"].to_numpy()
        return np.isin(self.event_ids, meteor_ids)

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write cube.fits (TIMEDEL), truth_mask.fits, truth_ids.fits and truth_events.ecsv."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        header = fits.Header()
        header["TIMEDEL"] = (self.frame_time, "[s] time per frame")
        header["BUNIT"] = ("counts", "counts per pixel per frame")
        header["SESSION"] = (self.kind, "simulated scene")
        header["SIMSEED"] = (self.seed, "skytriage simulate events seed")
        provenance = {"command": "skytriage simulate events",
                      "parameters": {"kind": self.kind, "seed": self.seed}}
        kinds = ", ".join(f"{i}={k}" for i, k in enumerate(self.events["kind"], 1))
        id_header = fits.Header()
        id_header["COMMENT"] = f"event id per pixel-frame (row of {EVENTS_NAME}); {kinds}"
        return {
            "cube": write_fits(out / CUBE_NAME, self.counts.astype(np.float32), header,
                               provenance=provenance),
            "mask": write_fits(out / MASK_NAME, self.meteor_mask.astype(np.uint8),
                               provenance=provenance),
            "ids": write_fits(out / IDS_NAME, self.event_ids.astype(np.int16), id_header,
                              provenance=provenance),
            "events": write_ecsv(out / EVENTS_NAME, self.events),
        }


def spot(x: float, y: float, sigma: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Pixel-integrated unit-flux Gaussian spot centred at (x, y) px, float32 ``shape``."""
    def profile(centre: float, n: int) -> np.ndarray:
        edges = (np.arange(n + 1, dtype=np.float64) - 0.5 - centre) / sigma
        return np.diff(ndtr(edges))

    return np.outer(profile(y, shape[0]), profile(x, shape[1])).astype(np.float32)


def ring(x: float, y: float, radius: float, width: float,
         shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """A thin ring of unit peak brightness, Gaussian across (``width`` px sigma), float32."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    r = np.hypot(xx - x, yy - y)
    return np.exp(-0.5 * ((r - radius) / width) ** 2).astype(np.float32)


class _Ground:
    """A ground map larger than the field, sampled as it slides past at ``velocity``."""

    def __init__(self, image: np.ndarray, origin: tuple[float, float],
                 velocity: tuple[float, float], frame_time: float):
        self.image = image
        self.origin = origin
        self.velocity = velocity
        self.frame_time = frame_time
        yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
        self._yy, self._xx = yy.astype(np.float64), xx.astype(np.float64)

    def position(self, t: float) -> tuple[float, float]:
        """Ground-map coordinates (x, y) of detector pixel (0, 0) at frame ``t``."""
        s = t * self.frame_time
        return self.origin[0] - self.velocity[0] * s, self.origin[1] - self.velocity[1] * s

    def sample(self, t: float) -> np.ndarray:
        """The ground seen at frame ``t``, float32 (48, 48)."""
        gx, gy = self.position(t)
        coords = np.stack([self._yy + gy, self._xx + gx])
        return map_coordinates(self.image, coords, order=1, mode="nearest").astype(np.float32)

    def to_detector(self, gx: float, gy: float, t: float) -> tuple[float, float]:
        """Detector (x, y) of ground point (gx, gy) at frame ``t``."""
        ox, oy = self.position(t)
        return gx - ox, gy - oy


def _ground(rng: np.random.Generator, scene: dict, n_frames: int, frame_time: float
            ) -> tuple[_Ground, _Ground]:
    """The sliding ground (airglow, cities, clouds) and a drifting high cloud layer."""
    speed = rng.uniform(0.6, 1.6)
    angle = rng.uniform(0, 2 * math.pi)
    velocity = (speed * math.cos(angle), speed * math.sin(angle))
    travel = speed * n_frames * frame_time
    size = int(SHAPE[0] + 2 * travel + 24)
    centre = size / 2
    origin = (centre - SHAPE[1] / 2 + velocity[0] * n_frames * frame_time / 2,
              centre - SHAPE[0] / 2 + velocity[1] * n_frames * frame_time / 2)
    level = rng.uniform(*scene["level"])
    airglow = CloudScreen(scale=60.0, coverage=0.5, softness=2.0,
                          seed=int(rng.integers(2**31))).cover((size, size))
    image = level * (0.85 + 0.3 * airglow)
    lights = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(scene["cities"][0], scene["cities"][1] + 1))):
        cx, cy = rng.uniform(0.2 * size, 0.8 * size, 2)
        for _ in range(int(rng.integers(2, 12))):
            px, py = cx + rng.normal(0, 3), cy + rng.normal(0, 3)
            sigma = rng.uniform(0.6, 2.5)
            bright = level * rng.uniform(1, 60) * sigma**2
            ix, iy = int(round(px)), int(round(py))
            if 2 <= ix < size - 2 and 2 <= iy < size - 2:
                lights[iy, ix] += bright
    lights = gaussian_filter(lights, 1.2)
    cover = CloudScreen(scale=25.0, coverage=scene["clouds"], softness=0.5,
                        seed=int(rng.integers(2**31))).cover((size, size))
    image = image * (1 + 0.6 * cover) + lights * (1 - 0.7 * cover)
    ground = _Ground(image.astype(np.float32), origin, velocity, frame_time)
    drift = rng.uniform(0.05, 0.3) * speed
    cloud_angle = angle + rng.normal(0, 0.5)
    cloud_velocity = (velocity[0] + drift * math.cos(cloud_angle),
                      velocity[1] + drift * math.sin(cloud_angle))
    high = CloudScreen(scale=18.0, coverage=0.5 * scene["clouds"], softness=0.6,
                       seed=int(rng.integers(2**31))).cover((size, size))
    clouds = _Ground((0.4 * level * high).astype(np.float32), origin, cloud_velocity, frame_time)
    return ground, clouds


def _light_curve(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rise-and-fall light curve of ``n`` frames, peak 1: ``u^a (1-u)^b`` with a small flare."""
    u = (np.arange(n) + 0.5) / n
    a, b = rng.uniform(1.0, 3.0), rng.uniform(0.5, 2.0)
    curve = u**a * (1 - u) ** b
    if rng.random() < 0.3:
        curve += 0.5 * curve.max() * np.exp(-0.5 * ((u - rng.uniform(0.3, 0.8)) / 0.04) ** 2)
    return curve / curve.max()


class _Builder:
    """Accumulates transients: their expected counts and the strongest per pixel-frame."""

    def __init__(self, background: np.ndarray):
        self.background = background
        self.signal = np.zeros_like(background)
        self.best = np.zeros_like(background)
        self.ids = np.zeros(background.shape, np.int32)
        self.rows: list[dict] = []

    def noise(self, t: int) -> np.ndarray:
        """Expected Poisson sigma of frame ``t`` (counts)."""
        return np.sqrt(np.maximum(self.background[t], 1.0))

    def add(self, kind: str, frames: dict[int, np.ndarray], track: dict | None = None) -> None:
        """Add one event: expected counts per frame, float32 (48, 48) each."""
        frames = {t: img for t, img in frames.items() if 0 <= t < len(self.background)}
        if not frames:
            return
        event_id = len(self.rows) + 1
        peak, masked, weight, sx, sy = 0.0, False, 0.0, 0.0, 0.0
        for t, img in frames.items():
            self.signal[t] += img
            significant = (img >= MASK_SIGMA * self.noise(t)) & (img >= 1.0)
            wins = significant & (img > self.best[t])
            self.best[t][wins] = img[wins]
            self.ids[t][wins] = event_id
            masked |= bool(significant.any())
            peak = max(peak, float(img.max()))
            total = float(img.sum())
            if total > 0:
                yy, xx = np.indices(img.shape)
                weight += total
                sx += float((img * xx).sum())
                sy += float((img * yy).sum())
        if not masked:
            return
        times = sorted(frames)
        track = track or {}
        self.rows.append({"id": event_id, "kind": kind, "t_start": times[0], "t_end": times[-1],
                          "x": sx / max(weight, 1e-9), "y": sy / max(weight, 1e-9),
                          "direction": track.get("direction", np.nan),
                          "speed": track.get("speed", np.nan), "peak": peak,
                          "snr": track.get("snr", np.nan)})

    def table(self) -> pd.DataFrame:
        """The events that reached the mask (ids 1..n, as in ``ids``)."""
        columns = ["id", "kind", "t_start", "t_end", "x", "y", "direction", "speed", "peak",
                   "snr"]
        return pd.DataFrame(self.rows, columns=columns)


def _meteor(b: _Builder, rng: np.random.Generator, frame_time: float, n_frames: int) -> None:
    duration = math.exp(rng.uniform(math.log(0.5), math.log(3.0)))
    n = max(6, int(round(duration / frame_time)))
    speed = rng.uniform(2.0, 16.0)
    length = speed * n * frame_time
    angle = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    mid = rng.uniform(6, SHAPE[1] - 6, 2)
    x0, y0 = mid[0] - 0.5 * length * c, mid[1] - 0.5 * length * s
    t0 = int(rng.integers(0, max(1, n_frames - n)))
    sigma = rng.uniform(0.55, 0.8)
    snr = math.exp(rng.uniform(math.log(3.0), math.log(40.0)))
    curve = _light_curve(n, rng)
    step = speed * frame_time
    centre_fraction = float(spot(24.0, 24.0, sigma).max())
    frames = {}
    for i in range(n):
        img = np.zeros(SHAPE, np.float32)
        for sub in (-1 / 3, 0.0, 1 / 3):  # motion blur within the frame
            d = (i + 0.5 + sub) * step
            img += spot(x0 + d * c, y0 + d * s, sigma) / 3
        frames[t0 + i] = img * curve[i]
    # scale so that the brightest pixel at the peak carries `snr` sigma of its noise
    i_peak = int(np.argmax(curve))
    d = (i_peak + 0.5) * step
    px = int(np.clip(round(x0 + d * c), 0, SHAPE[1] - 1))
    py = int(np.clip(round(y0 + d * s), 0, SHAPE[0] - 1))
    sigma_noise = float(b.noise(min(t0 + i_peak, n_frames - 1))[py, px])
    flux = snr * sigma_noise / centre_fraction
    b.add("meteor", {t: img * flux for t, img in frames.items()},
          {"direction": math.degrees(angle) % 360, "speed": speed, "snr": snr})


def _lightning(b: _Builder, rng: np.random.Generator, n_frames: int) -> None:
    t0 = int(rng.integers(0, n_frames))
    frames: dict[int, np.ndarray] = {}
    x, y = rng.uniform(-6, SHAPE[1] + 6, 2)
    width = rng.uniform(2.0, 7.0)
    t = t0
    for _ in range(int(rng.integers(1, 5))):
        amplitude = math.exp(rng.uniform(math.log(40.0), math.log(3000.0)))
        shape = spot(x + rng.normal(0, 1), y + rng.normal(0, 1), width) * (2 * math.pi * width**2)
        decay = rng.uniform(0.2, 0.6)
        for k in range(int(rng.integers(1, 5))):
            frames[t + k] = frames.get(t + k, 0) + shape * amplitude * decay**k
        t += int(rng.integers(2, 10))
    b.add("lightning", frames)


def _elve(b: _Builder, rng: np.random.Generator) -> None:
    t0 = int(rng.integers(0, len(b.background)))
    x, y = rng.uniform(-20, SHAPE[1] + 20, 2)
    radius = rng.uniform(3, 15)
    growth = rng.uniform(8, 20)
    amplitude = math.exp(rng.uniform(math.log(6.0), math.log(60.0)))
    frames = {}
    for k in range(int(rng.integers(1, 4))):
        frames[t0 + k] = ring(x, y, radius + growth * k, rng.uniform(1.0, 2.0)) * amplitude * (
            0.6**k)
    b.add("elve", frames)


def _cosmic_ray(b: _Builder, rng: np.random.Generator) -> None:
    t = int(rng.integers(0, len(b.background)))
    img = np.zeros(SHAPE, np.float32)
    x, y = int(rng.integers(0, SHAPE[1])), int(rng.integers(0, SHAPE[0]))
    dx, dy = rng.integers(-1, 2, 2)
    for k in range(int(rng.integers(1, 4))):
        xx, yy = x + k * dx, y + k * dy
        if 0 <= xx < SHAPE[1] and 0 <= yy < SHAPE[0]:
            img[yy, xx] = math.exp(rng.uniform(math.log(10.0), math.log(300.0)))
    b.add("cosmic_ray", {t: img})


def _flasher(b: _Builder, rng: np.random.Generator, ground: _Ground, n_frames: int) -> None:
    gx0, gy0 = ground.position(0)
    gx1, gy1 = ground.position(n_frames)
    gx = rng.uniform(min(gx0, gx1), max(gx0, gx1) + SHAPE[1])
    gy = rng.uniform(min(gy0, gy1), max(gy0, gy1) + SHAPE[0])
    period = rng.uniform(0.3, 1.5) / ground.frame_time
    pulse = int(rng.integers(1, 3))
    amplitude = math.exp(rng.uniform(math.log(10.0), math.log(200.0)))
    sigma = rng.uniform(0.5, 0.8)
    frames = {}
    phase = rng.uniform(0, period)
    for start in np.arange(phase, n_frames, period):
        t = int(start)
        x, y = ground.to_detector(gx, gy, t)
        if not (-2 < x < SHAPE[1] + 2 and -2 < y < SHAPE[0] + 2):
            continue
        for k in range(pulse):
            frames[t + k] = spot(x, y, sigma) * amplitude * (2 * math.pi * sigma**2)
    b.add("flasher", frames)


def simulate_session(kind: str = "ocean", seed: int = 0, n_frames: int = 2048,
                     frame_time: float = FRAME_TIME) -> Session:
    """Simulate one session.

    Parameters
    ----------
    kind : {"ocean", "cities", "clouds", "moonlit"}
        The scene.
    seed : int
        Random seed; the same (kind, seed) gives the same session.
    n_frames : int
        Frames T.
    frame_time : float
        Seconds per frame (TIMEDEL).

    Returns
    -------
    Session
    """
    if kind not in _SCENES:
        raise ValueError(f"unknown session kind {kind!r}; expected one of {SESSION_KINDS}")
    scene = _SCENES[kind]
    rng = np.random.default_rng([seed, SESSION_KINDS.index(kind)])
    ground, clouds = _ground(rng, scene, n_frames, frame_time)
    glow = 1 + 0.05 * np.sin(2 * np.pi * np.arange(n_frames) / rng.uniform(500, 3000)
                             + rng.uniform(0, 6.3))
    background = np.stack([(ground.sample(t) + clouds.sample(t)) * glow[t]
                           for t in range(n_frames)])
    flat = (1 + 0.02 * rng.standard_normal(SHAPE)).astype(np.float32)
    background *= flat
    b = _Builder(background)
    per_frame = n_frames / 1000
    for _ in range(max(1, int(rng.poisson(scene["meteors"] * per_frame)))):
        _meteor(b, rng, frame_time, n_frames)
    for _ in range(int(rng.poisson(scene["lightning"] * per_frame))):
        _lightning(b, rng, n_frames)
    for _ in range(int(rng.poisson(scene["elves"] * per_frame))):
        _elve(b, rng)
    for _ in range(int(rng.poisson(scene["cosmic"] * per_frame))):
        _cosmic_ray(b, rng)
    for _ in range(int(rng.integers(scene["flashers"][0], scene["flashers"][1] + 1))):
        _flasher(b, rng, ground, n_frames)
    events = b.table()
    counts = poisson(background + b.signal, rng)
    return Session(counts=counts, event_ids=b.ids, events=events, background=background,
                   kind=kind, seed=seed, frame_time=frame_time,
                   ground_velocity=ground.velocity, name=f"{kind}-{seed}")
