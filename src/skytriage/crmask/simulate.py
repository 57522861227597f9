"""Single exposures with cosmic rays and the truth about them.

A scene of stars (Gaussian or Moffat PSFs, undersampled to well sampled), galaxies and sky
is exposed on a CCD-like detector (Poisson noise, read noise, full well with bleed
trails); cosmic rays are added as charge: straight tracks and curved worms of varied width
and energy, and single hits, some aimed at star cores and wings. The truth keeps every
piece apart: the clean exposure (same noise, no cosmic rays), the cosmic-ray charge, the
noiseless scene and the star list.

A pixel is a cosmic-ray pixel in the truth when its cosmic-ray charge exceeds
:data:`TRUTH_SIGMA` times the pixel's own noise (read noise, sky and source Poisson
noise), and it is not saturated: fainter deposits cannot be told from noise and do not
matter for photometry (see docs/decisions.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

from skytriage.crmask.detect import BIT_COSMIC_RAY, BIT_SATURATED
from skytriage.io import write_ecsv, write_fits
from skytriage.sky.noise import poisson
from skytriage.sky.psf import PSF, Gaussian, Moffat
from skytriage.sky.stars import power_law_fluxes, render_stars

TRUTH_SIGMA = 2.0
"""A pixel is a cosmic-ray pixel when its deposit exceeds this many times its noise."""


CR_KINDS = ("track", "worm", "spot")


@dataclass
class ExposurePlan:
    """Everything random about one simulated exposure, drawn by :func:`draw_plan`.

    Units: fluxes and charges in e-, sizes in px, ``gain`` in e-/ADU.
    """

    shape: tuple[int, int]
    psf_kind: str
    fwhm: float
    beta: float
    gain: float
    read_noise: float
    sky: float
    n_stars: int
    n_galaxies: int
    star_fmax: float
    full_well: float
    cr_density: float
    aimed_fraction: float = 0.2

    def psf(self) -> PSF:
        """The PSF of this exposure."""
        if self.psf_kind == "gaussian":
            return Gaussian(self.fwhm)
        return Moffat(self.fwhm, beta=self.beta)


@dataclass
class CrExposure:
    """One simulated exposure and its truth.

    Attributes
    ----------
    image : numpy.ndarray
        float32 ADU (no bias), shape ``(ny, nx)``: what a user would give ``crmask``.
    clean : numpy.ndarray
        float32 ADU: the same exposure without cosmic rays (same noise).
    cr_charge : numpy.ndarray
        float32 e-: cosmic-ray charge per pixel.
    scene : numpy.ndarray
        float32 e-: noiseless sky + sources, before saturation.
    mask : numpy.ndarray
        uint16 truth flags: bit 1 cosmic ray (see :data:`TRUTH_SIGMA`), bit 32 saturated.
    stars : astropy.table.Table
        ``x, y`` (px), ``flux`` (e-), ``peak`` (e-, noiseless peak pixel above sky).
    plan : ExposurePlan
        The parameters it was drawn with.
    sky_rms : float
        Background noise (ADU).
    """

    image: np.ndarray
    clean: np.ndarray
    cr_charge: np.ndarray
    scene: np.ndarray
    mask: np.ndarray
    stars: Table
    plan: ExposurePlan
    sky_rms: float

    def header_cards(self) -> dict:
        """FITS cards describing the exposure (GAIN e-/ADU, RDNOISE e-, SATURATE ADU, ...)."""
        p = self.plan
        return {"GAIN": p.gain, "RDNOISE": p.read_noise, "SATURATE": p.full_well / p.gain,
                "BUNIT": "ADU", "SKYLEVEL": p.sky / p.gain, "PSF": p.psf_kind,
                "FWHM": p.fwhm, "CRDENS": p.cr_density}


def draw_plan(rng: np.random.Generator, shape: tuple[int, int] = (512, 512), *,
              psf_kind: str | None = None, fwhm_range: tuple[float, float] | None = None,
              beta_range: tuple[float, float] = (2.5, 4.5),
              density_range: tuple[float, float] = (0.001, 0.10)) -> ExposurePlan:
    """Draw the parameters of one exposure.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : (int, int)
        Image shape ``(ny, nx)``.
    psf_kind : {"gaussian", "moffat"}, optional
        Default: either, at random.
    fwhm_range : (float, float), optional
        PSF FWHM range (px); default: half the images undersampled (1.6–2.2 px, like
        HST ACS and WFC3), half well sampled (2.2–5.0 px).
    beta_range : (float, float)
        Moffat wing exponent range.
    density_range : (float, float)
        Cosmic-ray pixel fraction range, drawn log-uniformly.
    """
    if fwhm_range is None:
        fwhm_range = (1.6, 2.2) if rng.random() < 0.5 else (2.2, 5.0)
    area = shape[0] * shape[1] / 512**2
    return ExposurePlan(
        shape=tuple(shape),
        psf_kind=psf_kind or ("gaussian" if rng.random() < 0.4 else "moffat"),
        fwhm=float(rng.uniform(*fwhm_range)),
        beta=float(rng.uniform(*beta_range)),
        gain=float(rng.choice([0.5, 1.0, 1.5, 2.0, 4.0])),
        read_noise=float(rng.uniform(2.0, 10.0)),
        sky=float(np.exp(rng.uniform(np.log(5.0), np.log(2000.0)))),
        n_stars=int(area * rng.uniform(50, 400)),
        n_galaxies=int(area * rng.uniform(0, 30)),
        star_fmax=float(np.exp(rng.uniform(np.log(5e5), np.log(2e7)))),
        full_well=float(rng.choice([40000.0, 65000.0, 90000.0])),
        cr_density=float(np.exp(rng.uniform(*np.log(density_range)))),
    )


def simulate_exposure(plan: ExposurePlan, rng: np.random.Generator, *,
                      field_seed: int | None = None,
                      offset: tuple[float, float] = (0.0, 0.0)) -> CrExposure:
    """Render the scene, expose it, add cosmic rays and derive the truth mask.

    Parameters
    ----------
    plan : ExposurePlan
        What to draw (see :func:`draw_plan`).
    rng : numpy.random.Generator
        Source of the noise and cosmic rays (and of the scene without ``field_seed``).
    field_seed : int, optional
        Draw stars and galaxies from this seed instead, so that several exposures show
        the same field (see :func:`simulate_visits`).
    offset : (float, float)
        Pointing offset ``(dx, dy)`` (px) added to every source position.

    Returns
    -------
    CrExposure
    """
    shape = plan.shape
    scene_rng = rng if field_seed is None else np.random.default_rng(field_seed)
    stars = _stars(plan, scene_rng)
    stars["x"] += offset[0]
    stars["y"] += offset[1]
    sources = np.zeros(shape, dtype=np.float32)
    render_stars(sources, stars["x"], stars["y"], stars["flux"], plan.psf())
    sources += _galaxies(plan, scene_rng, offset)
    stars["peak"] = _peaks(sources, stars)
    scene = sources + np.float32(plan.sky)
    electrons = poisson(scene, rng)
    electrons += rng.standard_normal(shape, np.float32) * np.float32(plan.read_noise)
    noise_e = np.sqrt(plan.read_noise**2 + scene)
    cr = add_cosmic_rays(shape, plan, noise_e, stars, rng)
    electrons_cr = electrons + cr
    saturated = _bleed(electrons_cr, plan.full_well)
    _bleed(electrons, plan.full_well)
    mask = np.where(cr > TRUTH_SIGMA * noise_e, BIT_COSMIC_RAY, 0).astype(np.uint16)
    mask[saturated] = BIT_SATURATED
    inv_gain = np.float32(1 / plan.gain)
    sky_rms = float(np.sqrt(plan.read_noise**2 + plan.sky) / plan.gain)
    return CrExposure(image=electrons_cr * inv_gain, clean=electrons * inv_gain, cr_charge=cr,
                      scene=scene, mask=mask, stars=stars, plan=plan, sky_rms=sky_rms)


def simulate_visits(plan: ExposurePlan, rng: np.random.Generator, n: int, *,
                    max_offset: float = 3.0) -> list[CrExposure]:
    """``n`` exposures of one field with random pointing offsets (up to ``max_offset``
    px) and their own noise and cosmic rays, as repeated HST visits are."""
    field_seed = int(rng.integers(2**31))
    offsets = [(0.0, 0.0)] + [tuple(rng.uniform(-max_offset, max_offset, 2)) for _ in
                              range(n - 1)]
    return [simulate_exposure(plan, rng, field_seed=field_seed, offset=o) for o in offsets]


def _stars(plan: ExposurePlan, rng: np.random.Generator) -> Table:
    """A power-law field plus a few bright stars (10^5 e- up to ``star_fmax``), so that
    most images hold cores far above the noise and some saturate."""
    ny, nx = plan.shape
    n_bright = int(rng.poisson(6 * plan.shape[0] * plan.shape[1] / 512**2))
    flux = np.concatenate([
        power_law_fluxes(plan.n_stars, rng, fmin=30 * np.sqrt(plan.sky + 25),
                         fmax=plan.star_fmax, alpha=2.2),
        np.exp(rng.uniform(np.log(1e5), np.log(plan.star_fmax), n_bright))])
    n = flux.size
    return Table({"x": rng.uniform(-0.5, nx - 0.5, n), "y": rng.uniform(-0.5, ny - 0.5, n),
                  "flux": flux})


def _peaks(sources: np.ndarray, stars: Table) -> np.ndarray:
    """Noiseless value (e-) of the pixel under each star's centre."""
    ny, nx = sources.shape
    ix = np.clip(np.floor(np.asarray(stars["x"]) + 0.5).astype(int), 0, nx - 1)
    iy = np.clip(np.floor(np.asarray(stars["y"]) + 0.5).astype(int), 0, ny - 1)
    return sources[iy, ix].astype(float)


def _galaxies(plan: ExposurePlan, rng: np.random.Generator,
              offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Exponential and de Vaucouleurs-like discs (e-), blurred by the PSF's core width."""
    image = np.zeros(plan.shape, dtype=np.float32)
    ny, nx = plan.shape
    for _ in range(plan.n_galaxies):
        r_e = rng.uniform(2.0, 10.0)
        n_sersic = rng.choice([1.0, 2.0, 4.0])
        q, theta = rng.uniform(0.3, 1.0), rng.uniform(0, np.pi)
        flux = float(np.exp(rng.uniform(np.log(2e3), np.log(2e5))))
        x0, y0 = rng.uniform(0, nx) + offset[0], rng.uniform(0, ny) + offset[1]
        half = int(min(6 * r_e, 60))
        y_lo, y_hi = max(0, int(y0) - half), min(ny, int(y0) + half + 1)
        x_lo, x_hi = max(0, int(x0) - half), min(nx, int(x0) + half + 1)
        if y_lo >= y_hi or x_lo >= x_hi:
            continue
        yy, xx = np.mgrid[y_lo:y_hi, x_lo:x_hi]
        dx, dy = xx - x0, yy - y0
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / q
        b = 2.0 * n_sersic - 1.0 / 3.0
        profile = np.exp(-b * (np.hypot(u, v) / r_e) ** (1.0 / n_sersic))
        image[y_lo:y_hi, x_lo:x_hi] += (flux * profile / profile.sum()).astype(np.float32)
    return ndimage.gaussian_filter(image, plan.fwhm / 2.355)


def _bleed(electrons: np.ndarray, full_well: float) -> np.ndarray:
    """Clip at the full well, spilling the excess up and down the column (in place).

    Returns the boolean map of pixels at the full well (saturated cores and bleed trails).
    """
    over = electrons > full_well
    if not over.any():
        return over
    labels, n = ndimage.label(over, structure=np.array([[0, 1, 0]] * 3))
    for sl, idx in zip(ndimage.find_objects(labels), range(1, n + 1), strict=True):
        cols = range(sl[1].start, sl[1].stop)
        for col in cols:
            rows = np.flatnonzero(labels[sl[0], col] == idx) + sl[0].start
            if rows.size == 0:
                continue
            column = electrons[:, col]
            excess = float(np.sum(column[rows] - full_well))
            column[rows] = full_well
            _spill(column, rows[0] - 1, -1, excess / 2, full_well)
            _spill(column, rows[-1] + 1, +1, excess / 2, full_well)
    return electrons >= full_well


def _spill(column: np.ndarray, start: int, step: int, charge: float, full_well: float) -> None:
    """Fill pixels of ``column`` from ``start`` in direction ``step`` up to the full well."""
    row = start
    while charge > 0 and 0 <= row < column.size:
        room = full_well - column[row]
        take = min(max(room, 0.0), charge)
        column[row] += take
        charge -= take
        row += step


# --- cosmic rays ------------------------------------------------------------------------


@dataclass
class CosmicRay:
    """One cosmic-ray hit: a polyline path with a Gaussian cross-section.

    ``points`` are ``(k, 2)`` vertices ``(x, y)`` (px), ``width`` the cross-section sigma
    (px) and ``charge`` the total deposit (e-).
    """

    kind: str
    points: np.ndarray
    width: float
    charge: float


def draw_cosmic_ray(rng: np.random.Generator, x0: float, y0: float) -> CosmicRay:
    """A random track, worm or spot starting near ``(x0, y0)``."""
    kind = rng.choice(CR_KINDS, p=(0.45, 0.25, 0.30))
    if kind == "spot":
        return CosmicRay("spot", np.array([[x0, y0]]), float(rng.uniform(0.2, 0.6)),
                         float(np.exp(rng.uniform(np.log(80), np.log(2e4)))))
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "track":
        length = float(min(rng.exponential(8.0) + 1.5, 60.0))
        end = np.array([x0 + length * np.cos(angle), y0 + length * np.sin(angle)])
        points = np.array([[x0, y0], end])
        width = float(rng.uniform(0.25, 0.7))
    else:
        n = int(rng.integers(3, 8))
        steps = rng.uniform(2.0, 5.0, n)
        turns = np.cumsum(rng.normal(0, 0.6, n)) + angle
        points = np.vstack([[x0, y0], np.column_stack([x0 + np.cumsum(steps * np.cos(turns)),
                                                       y0 + np.cumsum(steps * np.sin(turns))])])
        width = float(rng.uniform(0.4, 1.2))
        length = float(steps.sum())
    per_px = float(np.exp(rng.uniform(np.log(40), np.log(4000))))
    return CosmicRay(str(kind), points, width, per_px * max(length, 1.0))


def render_cosmic_ray(cr: CosmicRay, shape: tuple[int, int],
                      rng: np.random.Generator) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Charge (e-) of one cosmic ray on its bounding box, or None when it misses the image.

    The deposit along the path varies smoothly (±40 %), as ionisation does.
    """
    margin = 3.0 * cr.width + 1.5
    lo = np.floor(cr.points.min(axis=0) - margin).astype(int)
    hi = np.ceil(cr.points.max(axis=0) + margin).astype(int) + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], shape[1]), min(hi[1], shape[0])
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d2, along = _distance_to_path(xx, yy, cr.points)
    wiggle = 1.0 + 0.4 * np.sin(along / rng.uniform(2.0, 6.0) + rng.uniform(0, 2 * np.pi))
    density = np.exp(-0.5 * d2 / cr.width**2) * wiggle
    total = density.sum()
    if total <= 0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (cr.charge * density / total).astype(np.float32)


def _distance_to_path(xx: np.ndarray, yy: np.ndarray,
                      points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance (px²) of every pixel centre to a polyline, and the path length
    (px) at the nearest point."""
    if len(points) == 1:
        return (xx - points[0, 0]) ** 2 + (yy - points[0, 1]) ** 2, np.zeros_like(xx)
    best = np.full(xx.shape, np.inf, dtype=np.float32)
    along = np.zeros_like(xx)
    walked = 0.0
    for (ax, ay), (bx, by) in zip(points[:-1], points[1:], strict=True):
        ux, uy = bx - ax, by - ay
        seg = float(np.hypot(ux, uy)) or 1e-6
        t = np.clip(((xx - ax) * ux + (yy - ay) * uy) / seg, 0.0, seg)
        d2 = (xx - ax - t * ux / seg) ** 2 + (yy - ay - t * uy / seg) ** 2
        closer = d2 < best
        best[closer] = d2[closer]
        along[closer] = walked + t[closer]
        walked += seg
    return best, along


def add_cosmic_rays(shape: tuple[int, int], plan: ExposurePlan, noise_e: np.ndarray,
                    stars: Table, rng: np.random.Generator) -> np.ndarray:
    """Cosmic-ray charge (e-) until the truth-mask fraction reaches ``plan.cr_density``.

    A fraction ``plan.aimed_fraction`` of the hits start within two FWHM of a star,
    chosen with probability rising with its flux, so that star cores and wings are hit.
    """
    charge = np.zeros(shape, dtype=np.float32)
    target = plan.cr_density * shape[0] * shape[1]
    bright = np.asarray(stars["flux"], float)
    weights = np.sqrt(bright) / np.sqrt(bright).sum() if len(stars) else None
    flagged, added = 0, 0
    while flagged < target:
        per_hit = flagged / added if flagged else 40.0
        batch = int(np.clip(0.6 * (target - flagged) / per_hit, 8, 20000))
        for _ in range(batch):
            if weights is not None and rng.random() < plan.aimed_fraction:
                k = rng.choice(len(stars), p=weights)
                r, a = rng.uniform(0, 2 * plan.fwhm), rng.uniform(0, 2 * np.pi)
                x0, y0 = stars["x"][k] + r * np.cos(a), stars["y"][k] + r * np.sin(a)
            else:
                x0, y0 = rng.uniform(-2, shape[1] + 2), rng.uniform(-2, shape[0] + 2)
            rendered = render_cosmic_ray(draw_cosmic_ray(rng, x0, y0), shape, rng)
            if rendered is not None:
                box, values = rendered
                charge[box] += values
        added += batch
        flagged = int(np.count_nonzero(charge > TRUTH_SIGMA * noise_e))
    return charge


def plan_as_dict(plan: ExposurePlan) -> dict:
    """JSON-ready parameters of a plan."""
    out = asdict(plan)
    out["shape"] = list(plan.shape)
    return out


def write_exposure(exposure: CrExposure, out_dir: Path, stem: str, *,
                   dtype: str = "float32") -> Path:
    """Write ``stem.fits`` (the image, with GAIN/RDNOISE/SATURATE) and its truth under
    ``out_dir/truth/``: ``stem_mask.fits`` (uint16 flags), ``stem_clean.fits`` (ADU),
    ``stem_sources.fits`` (noiseless sources, e-) and ``stem_stars.ecsv``.

    ``dtype="uint16"`` stores the image as integers with BZERO, with a bias of 100 ADU
    (and SATURATE raised to match), as raw detector frames come.
    """
    truth = out_dir / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    cards = exposure.header_cards()
    image = exposure.image
    if dtype == "uint16":
        bias = 100.0
        image = np.clip(np.rint(image + bias), 0, 65535).astype(np.uint16)
        cards["SATURATE"] = min(cards["SATURATE"] + bias, 65535.0)
        cards["BIASLVL"] = bias
    header = fits.Header(list(cards.items()))
    path = write_fits(out_dir / f"{stem}.fits", image, header)
    write_fits(truth / f"{stem}_mask.fits", exposure.mask)
    write_fits(truth / f"{stem}_clean.fits", exposure.clean, header)
    write_fits(truth / f"{stem}_sources.fits", exposure.scene - np.float32(exposure.plan.sky))
    stars = exposure.stars.copy()
    stars.meta = {"gain": exposure.plan.gain, "sky_rms_adu": exposure.sky_rms,
                  "plan": plan_as_dict(exposure.plan)}
    write_ecsv(truth / f"{stem}_stars.ecsv", stars)
    return path
