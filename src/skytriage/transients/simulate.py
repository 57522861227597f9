"""Reference/science pairs with known transients and nuisances that are not transients.

The science image defines the truth frame. The reference sees the same sky (stars and
galaxies) through another PSF, another sky level and a deeper exposure, pointed a few
pixels and a fraction of a pixel away. Between the two, point sources appear (``new``,
some on galaxies, some near the edges), variable stars brighten or fade by 0.3-3 mag, and
the detector adds things that are not transients: cosmic rays in one image, hot pixels
fixed on the detector (so they move on the sky between pointings), saturated stars.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from scipy.signal import oaconvolve

from skytriage.io import write_ecsv, write_fits
from skytriage.sky import CCD, Moffat, render_stars, sky_background, star_field
from skytriage.sky.psf import ProfilePSF, _as_radius

#: Magnitude of a source giving 1 ADU in the science image (written as MAGZP).
SCIENCE_ZP = 27.5
#: Truth kinds of transients and of nuisances.
TRANSIENT_KINDS = ("new", "brightening", "fading")
NUISANCE_KINDS = ("cosmic_ray_sci", "cosmic_ray_ref", "hot_pixel", "saturated_star")
_PIXEL_SCALE_DEG = 0.4 / 3600
_PSF_STAMP = 41
#: Point sources are drawn out to where a pixel gets this many e-: with 0.3 e- the stamps of
#: faint sources stopped at 1.5 FWHM + 1 px and the light beyond was put inside, so faint
#: transients came out up to 6 % more concentrated than the bright stars' PSF (measured:
#: their aperture fluxes 0.05-0.12 mag too bright).
_RENDER_THRESHOLD = 0.003


@dataclass(frozen=True)
class ExponentialGalaxy(ProfilePSF):
    """Elliptical exponential disc (before seeing), a PSF-like profile for ``render_stars``.

    Parameters
    ----------
    scale : float
        Scale length along the major axis (px).
    axis_ratio : float
        Minor over major axis, 0-1.
    angle : float
        Major axis direction (degrees from +x towards +y).
    """

    scale: float
    axis_ratio: float
    angle: float
    oversample: int = 3

    def profile(self, dx, dy):
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        u = (dx * c + dy * s) / self.scale
        v = (-dx * s + dy * c) / (self.scale * self.axis_ratio)
        norm = 2 * math.pi * self.scale**2 * self.axis_ratio
        return (np.exp(-np.sqrt(u * u + v * v)) / norm).astype(np.float32)

    def radius(self, flux, threshold):
        peak = np.asarray(flux, float) / (2 * math.pi * self.scale**2 * self.axis_ratio)
        return _as_radius(self.scale * np.log(np.maximum(peak / threshold, 1.0)), 3 * self.scale)


@dataclass
class PairConfig:
    """How a simulated pair is drawn (densities per million pixels of the science image).

    Attributes
    ----------
    shape : (int, int)
        Science image ``(ny, nx)`` (px).
    ref_shape : (int, int) or None
        Reference image shape; default the science shape.
    max_offset : float
        Largest pointing offset between the images, per axis (px).
    transients_per_mpix, stars_per_mpix, galaxies_per_mpix, cosmic_rays_per_mpix,
    hot_pixels_per_mpix, saturated_per_mpix : float
        Source and nuisance densities.
    snr_range : (float, float)
        Optimal S/N of the transients in the difference, drawn log-uniform.
    wcs : bool
        Write a TAN WCS into both headers (the reference's off by ~0.2 px, as a real one).
    zero_point : bool
        Write MAGZP into both headers.
    """

    shape: tuple[int, int] = (1024, 1024)
    ref_shape: tuple[int, int] | None = None
    max_offset: float = 6.0
    transients_per_mpix: float = 40.0
    stars_per_mpix: float = 800.0
    galaxies_per_mpix: float = 120.0
    cosmic_rays_per_mpix: float = 60.0
    hot_pixels_per_mpix: float = 25.0
    saturated_per_mpix: float = 3.0
    snr_range: tuple[float, float] = (4.0, 200.0)
    wcs: bool = True
    zero_point: bool = True
    kinds: tuple[str, ...] = field(default=TRANSIENT_KINDS)


@dataclass
class SimulatedPair:
    """One simulated pair and its truth.

    Attributes
    ----------
    ref, sci : numpy.ndarray
        uint16 images (ADU), shapes ``ref_shape`` and ``shape``.
    ref_header, sci_header : astropy.io.fits.Header
        GAIN, RDNOISE, EXPTIME, SATURATE, MAGZP (optional), WCS (optional).
    truth : astropy.table.Table
        One row per transient: ``x, y`` (science px), ``kind``, ``snr``, ``delta_flux``,
        ``flux_ref``, ``flux_sci`` (science ADU), ``mag_diff`` (ZP - 2.5 log10 |delta_flux|),
        ``delta_mag`` (m_ref - m_sci, NaN for new), ``on_galaxy``, ``edge_distance`` (px),
        ``in_reference`` (False where the reference never saw the place: no difference
        image can tell such a source from a star there).
    nuisances : astropy.table.Table
        ``x, y`` (science px) and ``kind`` of things that are not transients.
    offset : (float, float)
        Reference pixel minus science pixel of the same sky point, ``(dx, dy)``.
    """

    ref: np.ndarray
    sci: np.ndarray
    ref_header: fits.Header
    sci_header: fits.Header
    truth: Table
    nuisances: Table
    offset: tuple[float, float]


@dataclass
class _Exposure:
    """What differs between the reference and the science exposure."""

    shape: tuple[int, int]
    psf: Moffat
    sky: float  # e-/px
    depth: float  # electrons per science electron of the same source
    offset: tuple[float, float]  # this image's px minus science px
    camera: CCD
    exptime: float


def _noise_equivalent_area(psf: Moffat) -> float:
    """``1 / sum(P^2)`` of the PSF (px^2): the area over which a PSF fit gathers noise."""
    stamp = psf.stamp(_PSF_STAMP)
    return float(1.0 / np.sum(stamp.astype(np.float64) ** 2))


def _delta_flux_for_snr(snr: np.ndarray, background_var: float, host_per_delta: np.ndarray
                        ) -> np.ndarray:
    """Flux difference (science e-) whose optimal S/N is ``snr``.

    ``S/N^2 = dF^2 / (background_var + c dF)``, with ``c`` the photon noise of the
    source itself (in both images) per unit of ``dF``.
    """
    a, c = background_var, host_per_delta
    return 0.5 * (snr**2 * c + np.sqrt((snr**2 * c) ** 2 + 4 * snr**2 * a))


def _draw_transients(cfg: PairConfig, rng: np.random.Generator, sci: _Exposure,
                     ref: _Exposure, galaxies: Table) -> Table:
    """Positions, kinds and fluxes (science e-) of the transients."""
    ny, nx = cfg.shape
    n = max(1, rng.poisson(cfg.transients_per_mpix * ny * nx / 1e6))
    kind = rng.choice(list(cfg.kinds), n, p=_kind_weights(cfg.kinds))
    x, y = rng.uniform(2, nx - 3, n), rng.uniform(2, ny - 3, n)
    near_edge = rng.random(n) < 0.12
    edge_d = rng.uniform(3, 25, n)
    side = rng.integers(0, 4, n)
    x = np.where(near_edge & (side == 0), edge_d, np.where(near_edge & (side == 1),
                                                           nx - 1 - edge_d, x))
    y = np.where(near_edge & (side == 2), edge_d, np.where(near_edge & (side == 3),
                                                           ny - 1 - edge_d, y))
    on_galaxy = (kind == "new") & ~near_edge & (rng.random(n) < 0.35) & (len(galaxies) > 0)
    if on_galaxy.any():
        host = rng.integers(0, len(galaxies), on_galaxy.sum())
        radius = rng.uniform(0.3, 1.5, host.size) * np.asarray(galaxies["scale"])[host]
        phi = rng.uniform(0, 2 * np.pi, host.size)
        x[on_galaxy] = np.clip(np.asarray(galaxies["x"])[host] + radius * np.cos(phi), 2, nx - 3)
        y[on_galaxy] = np.clip(np.asarray(galaxies["y"])[host] + radius * np.sin(phi), 2, ny - 3)
    snr = np.exp(rng.uniform(*np.log(cfg.snr_range), n))
    dmag = rng.uniform(0.3, 3.0, n)
    delta_mag = np.where(kind == "new", np.nan, dmag)
    # science-e flux of the star in the reference, per unit of flux difference
    host_per_delta = np.where(kind == "new", 0.0, np.where(
        kind == "brightening", 1 / (10 ** (0.4 * dmag) - 1), 1 / (1 - 10 ** (-0.4 * dmag))))
    sci_per_delta = np.where(kind == "fading", host_per_delta - 1, host_per_delta + 1)
    photon = sci_per_delta + host_per_delta / ref.depth
    bg_var = ((sci.sky + sci.camera.read_noise**2) * _noise_equivalent_area(sci.psf)
              + (ref.sky + ref.camera.read_noise**2) / ref.depth**2
              * _noise_equivalent_area(ref.psf))
    delta = _delta_flux_for_snr(snr, bg_var, photon)
    flux_ref = host_per_delta * delta
    flux_sci = flux_ref + np.where(kind == "fading", -delta, delta)
    table = Table({"x": x, "y": y, "kind": kind, "snr": snr, "flux_ref_e": flux_ref,
                   "flux_sci_e": flux_sci, "delta_mag": delta_mag, "on_galaxy": on_galaxy})
    table["edge_distance"] = np.minimum.reduce([x, y, nx - 1 - x, ny - 1 - y])
    return table


def _kind_weights(kinds: tuple[str, ...]) -> list[float]:
    weights = {"new": 0.5, "brightening": 0.35, "fading": 0.15}
    total = sum(weights[k] for k in kinds)
    return [weights[k] / total for k in kinds]


def _draw_galaxies(cfg: PairConfig, rng: np.random.Generator, margin: float) -> Table:
    """Galaxy centres (science px), fluxes (science e-) and shapes."""
    ny, nx = cfg.shape
    n = rng.poisson(cfg.galaxies_per_mpix * (ny + 2 * margin) * (nx + 2 * margin) / 1e6)
    table = star_field(cfg.shape, n, rng, fmin=3e3, fmax=3e5, alpha=2.0, margin=margin)
    table["scale"] = rng.uniform(1.5, 5.0, n)
    table["axis_ratio"] = rng.uniform(0.35, 1.0, n)
    table["angle"] = rng.uniform(0, 180, n)
    return table


def _render_galaxies(image: np.ndarray, galaxies: Table, exp: _Exposure) -> None:
    """Add galaxies, seen through ``exp``'s PSF, to ``image`` (e-) in place."""
    if len(galaxies) == 0:
        return
    canvas = np.zeros_like(image)
    for row in galaxies:
        profile = ExponentialGalaxy(float(row["scale"]), float(row["axis_ratio"]),
                                    float(row["angle"]))
        render_stars(canvas, row["x"] + exp.offset[0], row["y"] + exp.offset[1],
                     row["flux"] * exp.depth, profile, threshold=0.2, max_radius=48)
    image += oaconvolve(canvas, exp.psf.stamp(_PSF_STAMP), mode="same").astype(np.float32)


def _cosmic_rays(shape: tuple[int, int], n: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosmic-ray hits: sharp 1-3 px spots and short tracks. Returns flat indices, e-, centres."""
    ny, nx = shape
    cx, cy = rng.uniform(0, nx, n), rng.uniform(0, ny, n)
    index, charge = [], []
    for x0, y0 in zip(cx, cy, strict=True):
        length = rng.choice([0.0, 0.0, rng.uniform(2, 12)])
        angle = rng.uniform(0, np.pi)
        steps = np.arange(0, length + 1)
        xs = np.clip(np.rint(x0 + steps * np.cos(angle)), 0, nx - 1).astype(int)
        ys = np.clip(np.rint(y0 + steps * np.sin(angle)), 0, ny - 1).astype(int)
        energy = rng.uniform(300, 20000)
        for dx, dy, share in ((0, 0, 1.0), (1, 0, 0.25), (0, 1, 0.2)):
            index.append(np.clip(ys + dy, 0, ny - 1) * nx + np.clip(xs + dx, 0, nx - 1))
            charge.append(np.full(xs.size, energy * share * rng.uniform(0.5, 1.0)))
    return np.concatenate(index), np.concatenate(charge), np.stack([cx, cy], axis=1)


def _expose(exp: _Exposure, stars: Table, galaxies: Table, transients: Table,
            which: str, rng: np.random.Generator, n_cosmic: int,
            hot_index: np.ndarray, hot_charge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image in ADU (uint16) and the centres of its cosmic rays (own px)."""
    image = sky_background(exp.shape, exp.sky, gradient=float(rng.uniform(0, 0.05)),
                           angle=float(rng.uniform(0, 360)))
    render_stars(image, stars["x"] + exp.offset[0], stars["y"] + exp.offset[1],
                 stars["flux"] * exp.depth, exp.psf, threshold=_RENDER_THRESHOLD)
    _render_galaxies(image, galaxies, exp)
    flux = transients[f"flux_{which}_e"] * exp.depth
    keep = flux > 0
    render_stars(image, transients["x"][keep] + exp.offset[0],
                 transients["y"][keep] + exp.offset[1], flux[keep], exp.psf,
                 threshold=_RENDER_THRESHOLD)
    index, charge, centres = _cosmic_rays(exp.shape, n_cosmic, rng)
    np.add.at(image.reshape(-1), index, charge.astype(np.float32))
    flat = image.reshape(-1)
    hot = hot_index[hot_index < flat.size]
    flat[hot] += hot_charge[: hot.size]
    return exp.camera.expose(image, rng, exp.exptime), centres


def _header(exp: _Exposure, cfg: PairConfig, rng: np.random.Generator) -> fits.Header:
    header = fits.Header()
    header["GAIN"] = (exp.camera.gain, "e-/ADU")
    header["RDNOISE"] = (exp.camera.read_noise, "e-")
    header["EXPTIME"] = (exp.exptime, "s")
    header["SATURATE"] = (exp.camera.saturation, "ADU")
    header["SKYBIAS"] = (exp.camera.bias, "ADU")
    if cfg.zero_point:
        zp = SCIENCE_ZP + 2.5 * math.log10(exp.depth)
        header["MAGZP"] = (round(zp, 4), "mag of a source of 1 ADU")
    if cfg.wcs:
        ny, nx = cfg.shape
        error = rng.normal(0, 0.2, 2) if exp.depth != 1.0 else np.zeros(2)
        header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
        header["CRVAL1"], header["CRVAL2"] = 150.0, 2.2
        header["CRPIX1"] = (nx - 1) / 2 + 1 + exp.offset[0] + error[0]
        header["CRPIX2"] = (ny - 1) / 2 + 1 + exp.offset[1] + error[1]
        header["CD1_1"], header["CD1_2"] = -_PIXEL_SCALE_DEG, 0.0
        header["CD2_1"], header["CD2_2"] = 0.0, _PIXEL_SCALE_DEG
    return header


def simulate_pair(seed: int, config: PairConfig | None = None) -> SimulatedPair:
    """Draw one reference/science pair with its truth catalogue.

    Parameters
    ----------
    seed : int
        The same seed gives the same pair.
    config : PairConfig, optional
        Sizes and densities; defaults as in :class:`PairConfig`.

    Returns
    -------
    SimulatedPair
    """
    cfg = config or PairConfig()
    rng = np.random.default_rng(seed)
    camera = CCD(gain=1.5, read_noise=5.0, bias=1000.0, full_well=90000.0)
    offset = tuple(float(v) for v in rng.uniform(-cfg.max_offset, cfg.max_offset, 2))
    ref_fwhm = rng.uniform(1.8, 2.6)
    sci = _Exposure(cfg.shape, Moffat(rng.uniform(max(ref_fwhm, 2.2), 3.6), rng.uniform(2.5, 4)),
                    sky=rng.uniform(150, 600), depth=1.0, offset=(0.0, 0.0), camera=camera,
                    exptime=60.0)
    ref = _Exposure(cfg.ref_shape or cfg.shape, Moffat(ref_fwhm, rng.uniform(2.5, 4)),
                    sky=rng.uniform(300, 1500), depth=float(rng.uniform(2.0, 4.0)),
                    offset=offset, camera=camera, exptime=180.0)
    margin = cfg.max_offset + 30
    ny, nx = cfg.shape
    area = (ny + 2 * margin) * (nx + 2 * margin) / 1e6
    stars = star_field(cfg.shape, rng.poisson(cfg.stars_per_mpix * area), rng, fmin=150,
                       fmax=4e6, alpha=2.2, margin=margin)
    stars = vstack([stars, star_field(cfg.shape, rng.poisson(cfg.saturated_per_mpix * area),
                                      rng, fmin=2e6, fmax=2e7, alpha=2.0, margin=margin)])
    galaxies = _draw_galaxies(cfg, rng, margin)
    transients = _draw_transients(cfg, rng, sci, ref, galaxies)
    hot_rng = np.random.default_rng(seed + 7919)
    n_hot = hot_rng.poisson(cfg.hot_pixels_per_mpix * ny * nx / 1e6)
    hot_index = hot_rng.integers(0, ny * nx, n_hot)
    hot_charge = hot_rng.uniform(200, 5000, n_hot).astype(np.float32)
    n_cr = rng.poisson(cfg.cosmic_rays_per_mpix * ny * nx / 1e6)
    sci_adu, sci_cr = _expose(sci, stars, galaxies, transients, "sci", rng, n_cr,
                              hot_index, hot_charge)
    ref_adu, ref_cr = _expose(ref, stars, galaxies, transients, "ref", rng, n_cr // 2,
                              hot_index, hot_charge)
    truth = _truth_table(transients, camera.gain)
    truth["in_reference"] = _in_image(truth["x"] + offset[0], truth["y"] + offset[1],
                                      ref.shape)
    nuisances = _nuisance_table(sci_cr, ref_cr, hot_index, nx, offset, stars, camera, sci)
    return SimulatedPair(ref_adu, sci_adu, _header(ref, cfg, rng), _header(sci, cfg, rng),
                         truth, nuisances, offset)


def _in_image(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Whether positions (px) lie on an image of ``shape``."""
    ny, nx = shape
    return (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)


def _truth_table(transients: Table, gain: float) -> Table:
    """Truth in science ADU and magnitudes (the science zero point)."""
    table = Table({"x": transients["x"], "y": transients["y"], "kind": transients["kind"],
                   "snr": transients["snr"]})
    table["flux_ref"] = transients["flux_ref_e"] / gain
    table["flux_sci"] = transients["flux_sci_e"] / gain
    table["delta_flux"] = table["flux_sci"] - table["flux_ref"]
    table["mag_diff"] = SCIENCE_ZP - 2.5 * np.log10(np.abs(table["delta_flux"]))
    is_new = transients["kind"] == "new"
    ratio = np.where(is_new, 1.0, table["flux_ref"] / table["flux_sci"])
    table["delta_mag"] = np.where(is_new, np.nan, -2.5 * np.log10(ratio))
    table["on_galaxy"] = transients["on_galaxy"]
    table["edge_distance"] = transients["edge_distance"]
    table.meta["zero_point"] = SCIENCE_ZP
    return table


def _nuisance_table(sci_cr: np.ndarray, ref_cr: np.ndarray, hot_index: np.ndarray, nx: int,
                    offset: tuple[float, float], stars: Table, camera: CCD,
                    sci: _Exposure) -> Table:
    """Where the things that are not transients lie, in science px."""
    hot_y, hot_x = np.divmod(hot_index, nx)
    peak = np.asarray(stars["flux"]) * float(sci.psf.stamp(_PSF_STAMP).max())
    bright = peak + sci.sky > camera.full_well
    parts = [(sci_cr[:, 0], sci_cr[:, 1], "cosmic_ray_sci"),
             (ref_cr[:, 0] - offset[0], ref_cr[:, 1] - offset[1], "cosmic_ray_ref"),
             (hot_x.astype(float), hot_y.astype(float), "hot_pixel"),
             (hot_x - offset[0], hot_y - offset[1], "hot_pixel"),
             (np.asarray(stars["x"])[bright], np.asarray(stars["y"])[bright], "saturated_star")]
    return Table({"x": np.concatenate([p[0] for p in parts]),
                  "y": np.concatenate([p[1] for p in parts]),
                  "kind": np.concatenate([[p[2]] * len(p[0]) for p in parts]).astype(str)})


def write_pair(pair: SimulatedPair, folder: str | os.PathLike, seed: int) -> dict[str, Path]:
    """Write ``ref.fits``, ``sci.fits``, ``truth.ecsv`` and ``nuisances.ecsv`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    provenance = {"command": "skytriage simulate transients", "parameters": {"seed": seed}}
    paths = {"ref": folder / "ref.fits", "sci": folder / "sci.fits",
             "truth": folder / "truth.ecsv", "nuisances": folder / "nuisances.ecsv"}
    write_fits(paths["ref"], pair.ref, pair.ref_header, provenance=provenance)
    write_fits(paths["sci"], pair.sci, pair.sci_header, provenance=provenance)
    truth = pair.truth.copy()
    truth.meta.update({"seed": seed, "ref_offset_px": list(pair.offset)})
    write_ecsv(paths["truth"], truth)
    write_ecsv(paths["nuisances"], pair.nuisances)
    return paths


def simulate_transients(out: str | os.PathLike, *, n_pairs: int = 1, seed: int = 0,
                        config: PairConfig | None = None, progress=None) -> list[Path]:
    """Write ``n_pairs`` simulated pairs as ``OUT/pair_NNN/`` (seeds ``seed``, ``seed+1``...).

    Returns
    -------
    list of pathlib.Path
        The pair folders.
    """
    folders = []
    for i in range(n_pairs):
        folder = Path(out) / f"pair_{i:03d}"
        write_pair(simulate_pair(seed + i, config), folder, seed + i)
        folders.append(folder)
        if progress is not None:
            progress(i + 1, n_pairs)
    return folders
