"""The star-profile stage: cosmic rays on stars found as excesses over a fitted star model.

A mask network trained for pixel F1 gives a hit on a bright star core a low probability and
now and then flags a clean undersampled core: it has to tell a cosmic ray from a star by
shape alone. Yet most cosmic-ray pixels on a star stand far above what the star puts there.
This stage models every star and lets the residual decide:

1. **Find stars**: local maxima of the 3×3-median image above :data:`MIN_PEAK_SIGMA`
   background rms; candidates whose core a first detector flagged are left out.
2. **Profile** (:class:`GridPSF`): one elliptical Moffat per image (FWHM, beta, e1, e2),
   integrated over pixels on an oversampled grid and evaluated by cubic splines, fitted by
   Nelder-Mead to the sharpest bright unflagged stars; the loss sums the best-fitting
   :data:`SHAPE_KEEP` of them, so galaxies and blends drop out.
3. **Fit every star** (flux, x, y; the background is the noise model's) with batched
   Gauss-Newton steps, Cauchy weights and the neighbours' current models subtracted
   (Jacobi sweeps).
4. **Saturated stars** (:class:`_Wings`): each saturated region is a star fitted from its
   unsaturated wings out to :data:`WING_RADIUS` px. Their wings then refine FWHM and beta
   together with the cores (:func:`_refine_with_wings`): cores alone leave beta loose, and
   a wrong beta is many per cent off in a bright star's wings.
5. **Model error**: each star gets its own fractional model error ``eps`` from the robust
   scatter of its residuals; the noise of a pixel is then
   ``sqrt(rms² + model/gain + (eps·model)²)``.
6. **Flag**: residuals above :data:`SEED_SIGMA` grow over those above
   :data:`GROW_SIGMA`; pixels whose residual the model explains (below
   :data:`EXPLAINED_SIGMA`) are returned so a caller can unflag them.
7. **Faint stars** the first detector flagged, too faint to be fitted above: each small
   flagged feature is asked whether the profile fits it better than a cosmic-ray spot
   (:mod:`skytriage.crmask.pointsource`); if so, it is returned with the explained pixels.

Only stars the model fits (``eps`` at most :data:`MAX_EPS`, no deep negative residuals) get
a say; galaxies and blends are left to the network. Units: ADU for
pixels, px for positions. docs/decisions.md says why the profile is analytic.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage, optimize
from scipy.spatial import cKDTree

from skytriage.crmask.detect import NoiseModel
from skytriage.crmask.pointsource import point_source_pixels

STAMP_RADIUS = 10
"""Half-size of the PSF grid and of every star's stamp (px)."""
PROFILE_RADIUS = 6
"""Half-size (px) of the stamps :func:`fit_profile` fits the shape on (the core is
what the point-source test needs)."""
OVERSAMPLE = 4
"""PSF grid nodes per pixel."""
SUBPIXELS = 7
"""Samples per pixel side when an analytic profile is integrated over a pixel."""
MIN_PEAK_SIGMA = 8.0
"""Stars whose 3×3-median peak exceeds this many background rms are fitted."""
MIN_SEPARATION = 2.5
"""Candidates closer than this (px) are one star."""
PSF_STAR_SIGMA = 30.0
"""Stars brighter than this (peak over rms) may fit the profile's shape."""
MAX_SHAPE_STARS = 40
SHAPE_KEEP = 0.7
"""The shape fits the best-fitting share of its stars (galaxies and blends drop out)."""
SHAPE_EPS = 0.005
"""Model error assumed while the shape is fitted (bright cores weigh in fully)."""
SHARPNESS = 0.9
"""PSF stars are at least this concentrated relative to the sharpest tenth."""
FIT_SWEEPS = 3
FIT_EPS = 0.03
"""Model error assumed while stars are fitted with the final profile."""
SEED_SIGMA = 5.0
GROW_SIGMA = 2.5
EXPLAINED_SIGMA = 2.0
MAX_EPS = 0.1
"""Stars whose fitted model is worse than this (fractional) are not trusted."""
REGION_SIGMA = 3.0
"""The stage speaks where the trusted stars' models exceed this many background rms."""
CAUCHY_SCALE = 3.0
WING_RADIUS = 40
"""Half-size (px) of a saturated star's stamp: its wings are fitted out to here."""
MAX_SATURATED_STARS = 200
WING_MAXFEV = 30
"""Profile evaluations allowed when the saturated stars' wings refine FWHM and beta."""
REFINE_STARS = 8
REFINE_RADIUS = 20
"""The refinement uses the largest saturated stars, their wings out to this (px)."""


class GridPSF:
    """A pixel-integrated PSF on an oversampled grid, evaluated by cubic splines.

    Parameters
    ----------
    grid : numpy.ndarray
        float64 ``(G, G)``, ``G = 2 * radius * oversample + 1``: the fraction of a star's
        flux a pixel gets when the star's centre sits ``((j - c) / s, (i - c) / s)`` px
        from the pixel centre, ``c = radius * oversample``.
    oversample : int
        Nodes per pixel ``s``.
    """

    def __init__(self, grid: np.ndarray, oversample: int = OVERSAMPLE):
        self.oversample = oversample
        self.shape: dict = {}
        self.centre = (grid.shape[0] - 1) // 2
        self.grid = self._normalised(grid)
        gy, gx = np.gradient(self.grid)
        self._coeffs = [ndimage.spline_filter(g, order=3) for g in
                        (self.grid, gx * oversample, gy * oversample)]

    def _normalised(self, grid: np.ndarray) -> np.ndarray:
        """Scale so that the pixels of a centred star sum to 1."""
        c, s = self.centre, self.oversample
        return grid / grid[c % s::s, c % s::s].sum()

    @classmethod
    def moffat(cls, fwhm: float, beta: float, e1: float = 0.0, e2: float = 0.0,
               radius: int = STAMP_RADIUS, oversample: int = OVERSAMPLE) -> GridPSF:
        """An elliptical Moffat profile integrated over square pixels.

        Parameters
        ----------
        fwhm : float
            Geometric-mean FWHM (px).
        beta : float
            Wing exponent (a Gaussian as it grows).
        e1, e2 : float
            Ellipticity components (``e1² + e2² < 1``).
        """
        nodes = np.arange(-radius * oversample, radius * oversample + 1) / oversample
        sub = (np.arange(SUBPIXELS) + 0.5) / SUBPIXELS - 0.5
        x = (nodes[None, :, None, None] + sub[None, None, None, :])
        y = (nodes[:, None, None, None] + sub[None, None, :, None])
        det = np.sqrt(max(1 - e1 * e1 - e2 * e2, 1e-3))
        r2 = ((1 + e1) * x * x + 2 * e2 * x * y + (1 - e1) * y * y) / det
        alpha2 = (fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))) ** 2
        psf = cls(np.mean((1 + r2 / alpha2) ** -beta, axis=(2, 3)), oversample)
        psf.shape = {"fwhm": round(float(fwhm), 4), "beta": round(float(beta), 4),
                     "e1": round(float(e1), 4), "e2": round(float(e2), 4)}
        return psf

    def evaluate(self, dx: np.ndarray, dy: np.ndarray, derivatives: bool = True
                 ) -> tuple[np.ndarray, ...]:
        """Profile and its derivatives at pixel offsets from the star centre.

        Parameters
        ----------
        dx, dy : numpy.ndarray
            Pixel centre minus star centre (px), any equal shape.
        derivatives : bool
            False: the value alone (a third of the work).

        Returns
        -------
        (value, d/ddx, d/ddy) or (value,)
            Arrays of the shape of ``dx``; zero outside the grid.
        """
        coords = np.stack([np.ravel(dy) * self.oversample + self.centre,
                           np.ravel(dx) * self.oversample + self.centre])
        wanted = self._coeffs if derivatives else self._coeffs[:1]
        return tuple(ndimage.map_coordinates(c, coords, order=3, prefilter=False,
                                             mode="constant", cval=0.0).reshape(np.shape(dx))
                     for c in wanted)


@dataclass
class StarModel:
    """Fitted stars (arrays of shape ``(n,)``; positions px, flux ADU); ``saturated``
    marks stars fitted by their wings."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    eps: np.ndarray
    trusted: np.ndarray
    saturated: np.ndarray


@dataclass
class _Group:
    """Stars fitted together: ``params`` ``(n, 3)`` (flux ADU, x, y px) on their stamps
    with one profile; ``eps`` fractional model errors, ``trusted`` bool, both ``(n,)``."""

    params: np.ndarray
    stamps: _Stamps
    psf: GridPSF
    eps: np.ndarray
    trusted: np.ndarray

    def light(self) -> np.ndarray:
        """Model light of every star over its stamp, ``(n, K)`` ADU."""
        return _star_light(self.params, self.stamps, self.psf)


@dataclass
class StarStage:
    """What the star-profile stage found in one image.

    Attributes
    ----------
    cosmic : numpy.ndarray
        bool ``(ny, nx)``: excesses over the star model (inside ``region`` only).
    explained : numpy.ndarray
        bool ``(ny, nx)``: pixels of ``region`` the model explains within
        :data:`EXPLAINED_SIGMA`, and pixels of the first detector's small features that
        the profile fits as faint stars (:func:`~skytriage.crmask.pointsource.point_source_pixels`).
    region : numpy.ndarray
        bool ``(ny, nx)``: where trusted star models exceed :data:`REGION_SIGMA` rms.
    model : numpy.ndarray
        float32 ``(ny, nx)``: the trusted stars' light (ADU, above the background).
    stars : StarModel
    psf : GridPSF or None
    """

    cosmic: np.ndarray
    explained: np.ndarray
    region: np.ndarray
    model: np.ndarray
    stars: StarModel
    psf: GridPSF | None
    faint_star_pixels: int = 0

    @property
    def info(self) -> dict:
        """Counts for summary.json."""
        trusted = self.stars.trusted
        saturated = self.stars.saturated
        return {"stars_fitted": int(trusted.size), "stars_trusted": int(trusted.sum()),
                "saturated_stars_fitted": int(saturated.sum()),
                "saturated_stars_trusted": int(np.sum(trusted & saturated)),
                "star_model_eps": round(float(np.median(self.stars.eps[trusted])), 4)
                if trusted.any() else None,
                "star_profile": self.psf.shape if self.psf is not None else None,
                "faint_star_pixels_unflagged": self.faint_star_pixels}


def find_stars(smooth: np.ndarray, noise: NoiseModel, ignore: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Integer peak positions ``(iy, ix)`` of star candidates, brightest first.

    A candidate is a local maximum (5×5) of ``smooth``, the 3×3-median image less the
    background (a single hit does not survive the median), above :data:`MIN_PEAK_SIGMA`
    background rms, away from saturated pixels and at least 2 px inside the frame;
    of two candidates closer than :data:`MIN_SEPARATION` (ties of the median image)
    only the brighter stays.
    """
    above = smooth > MIN_PEAK_SIGMA * noise.background_rms
    above &= ~ndimage.binary_dilation(ignore, iterations=2)
    above[:2], above[-2:], above[:, :2], above[:, -2:] = False, False, False, False
    iy, ix = np.nonzero(above)
    value = smooth[iy, ix]
    peak = np.ones(iy.size, bool)
    for dy in range(-2, 3):  # the 5×5 maximum, at the pixels above the cut only
        for dx in range(-2, 3):
            peak &= smooth[iy + dy, ix + dx] <= value
    iy, ix = iy[peak], ix[peak]
    order = np.argsort(-(value[peak] / noise.background_rms[iy, ix]), kind="stable")
    iy, ix = iy[order], ix[order]
    pairs = cKDTree(np.column_stack([iy, ix])).query_pairs(MIN_SEPARATION, output_type="ndarray")
    fainter = np.zeros(iy.size, bool)
    fainter[pairs.max(axis=1) if pairs.size else []] = True
    return iy[~fainter], ix[~fainter]


class _Stamps:
    """Square stamps of half-size ``radius`` (px) around integer star positions."""

    def __init__(self, shape: tuple[int, int], iy: np.ndarray, ix: np.ndarray,
                 radius: int = STAMP_RADIUS):
        r = radius
        k = np.arange(-r, r + 1)
        ky, kx = np.meshgrid(k, k, indexing="ij")
        self.ky, self.kx = ky.ravel(), kx.ravel()
        self.iy, self.ix = iy, ix
        self.py = iy[:, None] + self.ky[None, :]
        self.px = ix[:, None] + self.kx[None, :]
        self.inside = ((self.py >= 0) & (self.py < shape[0]) & (self.px >= 0)
                       & (self.px < shape[1]))
        self.flat = (np.clip(self.py, 0, shape[0] - 1) * shape[1]
                     + np.clip(self.px, 0, shape[1] - 1))
        self.shape = shape

    def take(self, image: np.ndarray) -> np.ndarray:
        """Stamp pixels ``(n, K)`` (edge pixels repeated outside the frame)."""
        return image.ravel()[self.flat]

    def render(self, values: np.ndarray) -> np.ndarray:
        """Add stamp values ``(n, K)`` into a float32 image."""
        out = np.zeros(self.shape[0] * self.shape[1], np.float64)
        np.add.at(out, self.flat[self.inside], values[self.inside])
        return out.reshape(self.shape).astype(np.float32)


def _fit(data: np.ndarray, usable: np.ndarray, stamps: _Stamps, sel: np.ndarray,
         params: np.ndarray, psf: GridPSF, rms2: np.ndarray, gain: float,
         eps: np.ndarray, steps: int = 4) -> np.ndarray:
    """Gauss-Newton steps for ``(flux, x, y)`` of the stars ``sel``.

    ``data`` ``(n, K)`` is background-subtracted (ADU), ``usable`` ``(n, K)`` the prior
    weights (0 for saturated, off-frame or prior-flagged pixels); returns new params.
    """
    params = params.copy()
    ix, iy = stamps.ix[sel], stamps.iy[sel]
    d, u = data[sel], usable[sel]
    for _ in range(steps):
        f, x, y = params[sel].T
        dx = stamps.kx[None, :] + (ix - x)[:, None]
        dy = stamps.ky[None, :] + (iy - y)[:, None]
        p, px, py = psf.evaluate(dx, dy)
        src = f[:, None] * p
        var = rms2[sel, None] + np.maximum(src, 0) / gain + (eps[sel, None] * src) ** 2
        resid = d - src
        z = resid / np.sqrt(var)
        w = u / (1 + (z / CAUCHY_SCALE) ** 2) / var
        jac = np.stack([p, -f[:, None] * px, -f[:, None] * py], axis=-1)
        a = np.einsum("nk,nki,nkj->nij", w, jac, jac)
        diagonal = np.arange(3)
        a[:, diagonal, diagonal] = a[:, diagonal, diagonal] * (1 + 1e-6) + 1e-30
        b = np.einsum("nk,nki,nk->ni", w, jac, resid)
        step = np.linalg.solve(a, b[..., None])[..., 0]
        step[:, 1:] = np.clip(step[:, 1:], -0.5, 0.5)
        params[sel] += step
        params[sel, 0] = np.maximum(params[sel, 0], 1e-3)
    return params


def _window(src: np.ndarray, stamps: _Stamps, rms: np.ndarray) -> np.ndarray:
    """Pixels a star's fit uses: where its model exceeds 0.3 rms, or within 2.5 px."""
    near = (stamps.kx**2 + stamps.ky**2) <= 6.25
    return (src > 0.3 * rms[:, None]) | near[None, :]


def _initial_params(level: np.ndarray, stamps: _Stamps, psf: GridPSF) -> np.ndarray:
    """``(flux, x, y)`` from the peak pixel and a parabola through its neighbours."""
    iy, ix = stamps.iy, stamps.ix
    ny, nx = level.shape

    def offset(lo, mid, hi):
        curv = lo - 2 * mid + hi
        return np.where(curv < 0, np.clip(0.5 * (lo - hi) / np.where(curv < 0, curv, -1),
                                          -0.5, 0.5), 0.0)

    mid = level[iy, ix]
    ox = offset(level[iy, np.maximum(ix - 1, 0)], mid, level[iy, np.minimum(ix + 1, nx - 1)])
    oy = offset(level[np.maximum(iy - 1, 0), ix], mid, level[np.minimum(iy + 1, ny - 1), ix])
    peak_fraction = psf.evaluate(np.zeros(1), np.zeros(1), derivatives=False)[0][0]
    return np.column_stack([mid / peak_fraction, ix + ox, iy + oy])


def _unflagged_patches(image: np.ndarray, background: np.ndarray, smooth: np.ndarray,
                       blocked: np.ndarray, iy: np.ndarray, ix: np.ndarray, r: int = 3
                       ) -> np.ndarray:
    """``(n, 2r+1, 2r+1)`` patches of ``image - background`` around each peak, with the
    3×3-median ``smooth`` (background subtracted) where ``blocked`` (a flagged hit does not
    widen or sharpen a star); taken at the peaks only, so no image-size temporaries."""
    k = np.arange(-r, r + 1)
    yy = np.clip(iy[:, None, None] + k[None, :, None], 0, image.shape[0] - 1)
    xx = np.clip(ix[:, None, None] + k[None, None, :], 0, image.shape[1] - 1)
    return np.where(blocked[yy, xx], smooth[yy, xx], image[yy, xx] - background[yy, xx])


def _start_fwhm(patches: np.ndarray) -> float:
    """Median FWHM (px) of the 50 brightest candidates from their area above half peak
    (``patches`` from :func:`_unflagged_patches`, brightest first)."""
    patches = patches[:50]
    r = patches.shape[1] // 2
    area = np.sum(patches > 0.5 * patches[:, r, r][:, None, None], axis=(1, 2))
    return float(np.clip(2 * np.sqrt(np.median(area) / np.pi), 1.0, 8.0))


def _concentration(patches: np.ndarray) -> np.ndarray:
    """Share of the 7×7 light in the brightest 3×3 around each peak (``patches`` 7×7 from
    :func:`_unflagged_patches`): point sources have the most; galaxies and blends less."""
    r = patches.shape[1] // 2
    box3 = patches[:, r - 1:r + 2, r - 1:r + 2].sum(axis=(1, 2))
    return box3 / np.maximum(patches.sum(axis=(1, 2)), 1e-9)


def _psf_stars(snr: np.ndarray, clean: np.ndarray, concentration: np.ndarray
               ) -> np.ndarray:
    """Indices of the stars that fit the profile's shape: brighter than
    :data:`PSF_STAR_SIGMA`, ``clean`` (no saturated or flagged core), and at least
    :data:`SHARPNESS` as concentrated as the sharpest tenth of those; at most
    :data:`MAX_SHAPE_STARS`, brightest first (inputs are ``(n,)``, brightest first)."""
    bright = (snr > PSF_STAR_SIGMA) & clean
    if not bright.any():
        return np.zeros(0, int)
    sharp = concentration >= SHARPNESS * np.percentile(concentration[bright], 90)
    return np.nonzero(bright & sharp)[0][:MAX_SHAPE_STARS]


def fit_profile(image: np.ndarray, noise: NoiseModel, ignore: np.ndarray,
                prior: np.ndarray | None = None) -> GridPSF | None:
    """The image's elliptical Moffat profile from its sharp bright stars alone.

    The cheap half of :func:`fit_star_model`: only the :data:`MAX_SHAPE_STARS` stars
    that fit the shape are fitted, each on its own (no neighbours subtracted: blends
    drop out of the trimmed loss), on stamps of :data:`PROFILE_RADIUS` px. Enough for
    the point-source test (:mod:`skytriage.crmask.pointsource`), which needs the core.

    Parameters
    ----------
    image : numpy.ndarray
        float32 ADU ``(ny, nx)``.
    noise : NoiseModel
    ignore : numpy.ndarray
        bool ``(ny, nx)``: saturated and bad pixels.
    prior : numpy.ndarray, optional
        bool ``(ny, nx)``: a first detector's cosmic rays (stars with a flagged core are
        not used; flagged pixels are left out of the fits).

    Returns
    -------
    GridPSF or None
        None with fewer than 3 usable stars.
    """
    smooth = cv2.medianBlur(np.ascontiguousarray(image, np.float32), 3)
    smooth -= noise.background
    iy, ix = find_stars(smooth, noise, ignore)
    snr = smooth[iy, ix] / noise.background_rms[iy, ix]
    bright = snr > PSF_STAR_SIGMA
    iy, ix, snr = iy[bright], ix[bright], snr[bright]
    blocked = ignore if prior is None else ignore | prior
    stamps = _Stamps(image.shape, iy, ix, PROFILE_RADIUS)
    core = (stamps.kx**2 + stamps.ky**2) <= 2.25
    clean = (~np.any(stamps.take(ignore) & stamps.inside, axis=1)
             & ~np.any(stamps.take(blocked)[:, core], axis=1))
    patches = _unflagged_patches(image, noise.background, smooth, blocked, iy, ix)
    chosen = _psf_stars(snr, clean, _concentration(patches))
    if chosen.size < 3:
        return None
    stamps = _Stamps(image.shape, iy[chosen], ix[chosen], PROFILE_RADIUS)
    rms2 = noise.background_rms[stamps.iy, stamps.ix].astype(np.float64) ** 2
    usable = (stamps.inside & ~stamps.take(blocked)).astype(np.float64)
    data = stamps.take(image).astype(np.float64) - stamps.take(noise.background)
    fwhm = _start_fwhm(patches[chosen])
    psf = GridPSF.moffat(fwhm, 3.0, radius=PROFILE_RADIUS)
    every = np.arange(chosen.size)
    params = _fit(data, usable, stamps, every, _initial_params(smooth, stamps, psf), psf,
                  rms2, noise.gain, np.full(chosen.size, 0.3))
    return _fit_shape(fwhm, data, usable, stamps, every, params, rms2, noise.gain,
                      radius=PROFILE_RADIUS)


def fit_star_model(image: np.ndarray, noise: NoiseModel, ignore: np.ndarray,
                   prior: np.ndarray | None = None) -> list[_Group] | None:
    """Fit the image's Moffat profile and every star with it, saturated ones by their wings.

    Parameters
    ----------
    image : numpy.ndarray
        float32 ADU ``(ny, nx)``.
    noise : NoiseModel
        Background and rms (ADU) and gain.
    ignore : numpy.ndarray
        bool ``(ny, nx)``: saturated and bad pixels (never fitted).
    prior : numpy.ndarray, optional
        bool ``(ny, nx)``: pixels a first detector flagged (left out of every fit).

    Returns
    -------
    list of _Group or None
        The unsaturated stars, then (if any) the saturated ones; None with fewer than 3
        unsaturated candidates.
    """
    level = image - noise.background
    smooth = cv2.medianBlur(np.ascontiguousarray(image, np.float32), 3) - noise.background
    iy, ix = find_stars(smooth, noise, ignore)
    if iy.size < 3:
        return None
    blocked = ignore if prior is None else ignore | prior
    stamps = _Stamps(image.shape, iy, ix)
    core = (stamps.kx**2 + stamps.ky**2) <= 2.25
    flagged_core = np.mean(stamps.take(blocked)[:, core], axis=1)
    if prior is not None:
        stamps = _Stamps(image.shape, iy[flagged_core < 0.5], ix[flagged_core < 0.5])
        flagged_core = flagged_core[flagged_core < 0.5]
        iy, ix = stamps.iy, stamps.ix
        if iy.size < 3:
            return None
    rms = noise.background_rms[iy, ix].astype(np.float64)
    rms2 = rms**2
    usable = (stamps.inside & ~stamps.take(blocked)).astype(np.float64)
    raw = stamps.take(level).astype(np.float64)
    patches = _unflagged_patches(image, noise.background, smooth, blocked, iy, ix)
    fwhm = _start_fwhm(patches)
    psf = GridPSF.moffat(fwhm, 3.0)
    params = _initial_params(smooth, stamps, psf)
    snr = smooth[iy, ix] / rms
    clean_stamp = ~np.any(stamps.take(ignore) & stamps.inside, axis=1)
    concentration = _concentration(patches)
    psf_stars = _psf_stars(snr, clean_stamp & (flagged_core == 0), concentration)
    everyone = np.arange(iy.size)
    eps = np.full(iy.size, 0.3)
    data = raw - _neighbour_light(params, stamps, psf)
    params = _fit(data, usable, stamps, everyone, params, psf, rms2, noise.gain, eps)
    if psf_stars.size >= 3:
        data = raw - _neighbour_light(params, stamps, psf)
        psf = _fit_shape(fwhm, data, usable, stamps, psf_stars, params, rms2, noise.gain)
    eps = np.full(iy.size, FIT_EPS)

    def sweeps(params, outside, n=FIT_SWEEPS):
        for _ in range(n):
            data = raw - outside - _neighbour_light(params, stamps, psf)
            params = _fit(data, usable, stamps, everyone, params, psf, rms2, noise.gain, eps)
        return params

    params = sweeps(params, 0.0)
    wings = _Wings.find(level, ignore, blocked, noise)
    outside, saturated = 0.0, []
    if wings is not None:
        wide = wings.profile(psf)
        others = stamps.render(_star_light(params, stamps, psf))
        wing_params = wings.fit(others, wide, noise.gain)
        if psf_stars.size >= 3 and wing_params.shape[0] >= 2:
            outside = stamps.take(wings.render(wing_params, wide))
            cores = (raw - outside - _neighbour_light(params, stamps, psf), usable, stamps,
                     psf_stars, params, rms2)
            few = wings.subset(REFINE_STARS, REFINE_RADIUS)
            psf = _refine_with_wings(
                psf, cores, few.inputs(wing_params[:REFINE_STARS], wide, others), noise.gain)
            wide = wings.profile(psf)
            params = sweeps(params, outside)
            others = stamps.render(_star_light(params, stamps, psf))
            wing_params = wings.fit(others, wide, noise.gain, wing_params)
        outside = stamps.take(wings.render(wing_params, wide))
        params = sweeps(params, outside, 1)
        others = stamps.render(_star_light(params, stamps, psf))
        saturated = [wings.group(wing_params, wide, others, noise.gain)]
    data = raw - outside - _neighbour_light(params, stamps, psf)
    eps, trusted = _model_errors(data, usable, stamps, params, psf, rms, noise.gain)
    return [_Group(params, stamps, psf, eps, trusted), *saturated]


def saturated_cores(ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer centre guesses ``(iy, ix)`` of saturated stars, largest first.

    Each connected saturated region (a core and its bleed trail along the columns) gives
    the middle of its widest row; at most :data:`MAX_SATURATED_STARS` regions.
    """
    labels, n = ndimage.label(ignore)
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    sizes = ndimage.sum_labels(ignore, labels, np.arange(1, n + 1))
    boxes = ndimage.find_objects(labels)
    iy, ix = [], []
    for k in np.argsort(-sizes, kind="stable")[:MAX_SATURATED_STARS]:
        rows, cols = boxes[k]
        inside = labels[rows, cols] == k + 1
        widest = int(np.argmax(inside.sum(axis=1)))
        iy.append(rows.start + widest)
        ix.append(cols.start + int(round(np.mean(np.nonzero(inside[widest])[0]))))
    return np.array(iy), np.array(ix)


class _Wings:
    """Saturated stars, fitted (flux, centre) from their unsaturated wings out to
    :data:`WING_RADIUS` px.

    Pixels within a pixel across or two along a column of saturation are left out: bleed
    tails hold spilled charge. ``level`` arrays are the image less the background (ADU).
    """

    def __init__(self, level: np.ndarray, stamps: _Stamps, usable: np.ndarray,
                 rms: np.ndarray):
        self.level, self.stamps, self.usable, self.rms = level, stamps, usable, rms

    @classmethod
    def find(cls, level: np.ndarray, ignore: np.ndarray, blocked: np.ndarray,
             noise: NoiseModel) -> _Wings | None:
        """The image's saturated stars (see :func:`saturated_cores`), or None."""
        iy, ix = saturated_cores(ignore)
        if iy.size == 0:
            return None
        stamps = _Stamps(level.shape, iy, ix, WING_RADIUS)
        near = ndimage.binary_dilation(ignore, np.ones((5, 3), bool))
        usable = (stamps.inside & ~stamps.take(near | blocked)).astype(np.float64)
        return cls(stamps.take(level).astype(np.float64), stamps, usable,
                   noise.background_rms[iy, ix].astype(np.float64))

    def subset(self, n: int, radius: int) -> _Wings:
        """The first ``n`` stars on stamps cut to half-size ``radius`` px."""
        inner = (np.abs(self.stamps.kx) <= radius) & (np.abs(self.stamps.ky) <= radius)
        stamps = _Stamps(self.stamps.shape, self.stamps.iy[:n], self.stamps.ix[:n], radius)
        return _Wings(self.level[:n, inner], stamps, self.usable[:n, inner], self.rms[:n])

    @staticmethod
    def profile(psf: GridPSF) -> GridPSF:
        """``psf``'s Moffat on a grid as wide as the wing stamps."""
        return GridPSF.moffat(**psf.shape, radius=WING_RADIUS + 1)

    def render(self, params: np.ndarray, wide: GridPSF) -> np.ndarray:
        """The saturated stars' light as an image (ADU)."""
        return self.stamps.render(_star_light(params, self.stamps, wide))

    def inputs(self, params: np.ndarray, wide: GridPSF, others: np.ndarray) -> tuple:
        """``(data, usable, stamps, sel, params, rms2)`` with every other star's light
        taken out (``others``: an image of the unsaturated stars' light)."""
        data = (self.level - _neighbour_light(params, self.stamps, wide)
                - self.stamps.take(others))
        return (data, self.usable, self.stamps, np.arange(params.shape[0]), params,
                self.rms**2)

    def fit(self, others: np.ndarray, wide: GridPSF, gain: float,
            params: np.ndarray | None = None) -> np.ndarray:
        """``(n, 3)`` flux (ADU), x, y; from a linear flux at the core guesses unless
        ``params`` are given."""
        stamps, usable, rms2 = self.stamps, self.usable, self.rms**2
        raw = self.level - stamps.take(others)
        if params is None:
            # a star centred on a pixel
            profile = wide.evaluate(stamps.kx, stamps.ky, derivatives=False)[0][None, :]
            weight = usable / (rms2[:, None] + np.abs(raw) / gain)
            flux = np.sum(weight * raw * profile, axis=1) / np.maximum(
                np.sum(weight * profile**2, axis=1), 1e-12)
            params = np.column_stack([np.maximum(flux, 1e-3), stamps.ix.astype(float),
                                      stamps.iy.astype(float)])
        everyone = np.arange(params.shape[0])
        eps = np.full(params.shape[0], FIT_EPS)
        for _ in range(FIT_SWEEPS):
            data = raw - _neighbour_light(params, stamps, wide)
            params = _fit(data, usable, stamps, everyone, params, wide, rms2, gain, eps,
                          steps=8)
        return params

    def group(self, params: np.ndarray, wide: GridPSF, others: np.ndarray, gain: float
              ) -> _Group:
        """The fitted saturated stars with their model errors."""
        data = self.inputs(params, wide, others)[0]
        eps, trusted = _model_errors(data, self.usable, self.stamps, params, wide,
                                     self.rms, gain)
        return _Group(params, self.stamps, wide, eps, trusted)


def _trimmed_loss(psf: GridPSF, data: np.ndarray, usable: np.ndarray, stamps: _Stamps,
                  sel: np.ndarray, params: np.ndarray, rms2: np.ndarray, gain: float
                  ) -> float:
    """Cauchy loss of the best-fitting :data:`SHAPE_KEEP` of the stars ``sel`` with the
    profile ``psf``, each star's flux and centre refitted (model error
    :data:`SHAPE_EPS`)."""
    eps = np.full(params.shape[0], SHAPE_EPS)
    fitted = _fit(data, usable, stamps, sel, params, psf, rms2, gain, eps, steps=2)
    z = _scaled_residuals(data[sel], usable[sel], stamps, sel, fitted, psf, rms2, gain, eps)
    per_star = np.sum(usable[sel] * np.log1p((z / CAUCHY_SCALE) ** 2), axis=1)
    return float(np.sum(np.sort(per_star)[:max(3, int(SHAPE_KEEP * sel.size))]))


def _refine_with_wings(psf: GridPSF, cores: tuple, wings: tuple, gain: float
                       ) -> GridPSF:
    """FWHM and beta refitted to the PSF stars' cores and the saturated stars' wings
    together, the ellipticity kept: the cores hold the width, the wings the exponent,
    which the cores alone leave loose.

    ``cores`` and ``wings`` are ``(data, usable, stamps, sel, params, rms2)`` as
    :func:`_trimmed_loss` takes them; the wings are evaluated on a coarser, wider grid.
    """
    shape = psf.shape

    def loss(theta):
        fwhm, beta = np.exp(theta[0]), 1 + np.exp(theta[1])
        core = GridPSF.moffat(fwhm, beta, shape["e1"], shape["e2"])
        wide = GridPSF.moffat(fwhm, beta, shape["e1"], shape["e2"],
                              radius=REFINE_RADIUS + 1, oversample=2)
        return (_trimmed_loss(core, *cores, gain=gain)
                + _trimmed_loss(wide, *wings, gain=gain))

    start = np.array([np.log(shape["fwhm"]), np.log(shape["beta"] - 1)])
    best = optimize.minimize(loss, start, method="Nelder-Mead",
                             options={"xatol": 1e-3, "fatol": 1e-3, "maxfev": WING_MAXFEV,
                                      "initial_simplex": start + np.vstack(
                                          [np.zeros(2), np.diag([0.05, 0.2])])})
    return GridPSF.moffat(np.exp(best.x[0]), 1 + np.exp(best.x[1]), shape["e1"], shape["e2"])


def _fit_shape(fwhm: float, data: np.ndarray, usable: np.ndarray, stamps: _Stamps,
               sel: np.ndarray, params: np.ndarray, rms2: np.ndarray, gain: float,
               radius: int = STAMP_RADIUS) -> GridPSF:
    """The elliptical Moffat (FWHM, beta, e1, e2) that fits the stars ``sel`` best
    (Nelder-Mead on the summed Cauchy loss, each star's flux and centre refitted); its
    grid reaches ``radius`` px, the stamps' half-size."""
    def build(theta):
        return GridPSF.moffat(np.exp(theta[0]), 1 + np.exp(theta[1]),
                              np.tanh(theta[2]), np.tanh(theta[3]), radius=radius)

    def loss(theta):
        return _trimmed_loss(build(theta), data, usable, stamps, sel, params, rms2, gain)

    start = np.array([np.log(fwhm), np.log(2.0), 0.0, 0.0])
    best = optimize.minimize(loss, start, method="Nelder-Mead",
                             options={"xatol": 1e-3, "fatol": 1e-4, "maxfev": 120,
                                      "initial_simplex": start + np.vstack(
                                          [np.zeros(4), np.diag([0.2, 0.5, 0.1, 0.1])])})
    return build(best.x)


def _scaled_residuals(data: np.ndarray, usable: np.ndarray, stamps: _Stamps, sel: np.ndarray,
                      params: np.ndarray, psf: GridPSF, rms2: np.ndarray, gain: float,
                      eps: np.ndarray) -> np.ndarray:
    """Residuals over their noise, ``(len(sel), K)``, inside each star's fit window."""
    src = _star_light(params, stamps, psf, sel)
    var = rms2[sel, None] + np.maximum(src, 0) / gain + (eps[sel, None] * src) ** 2
    z = (data - src) / np.sqrt(var)
    return np.where(_window(src, stamps, np.sqrt(rms2[sel])) & (usable > 0), z, 0.0)


def _star_light(params: np.ndarray, stamps: _Stamps, psf: GridPSF,
                sel: np.ndarray | slice = slice(None)) -> np.ndarray:
    """The model light of stars ``sel`` over their stamps, ``(n, K)`` ADU."""
    dx = stamps.kx[None, :] + (stamps.ix[sel] - params[sel, 1])[:, None]
    dy = stamps.ky[None, :] + (stamps.iy[sel] - params[sel, 2])[:, None]
    return params[sel, 0, None] * psf.evaluate(dx, dy, derivatives=False)[0]


def _neighbour_light(params: np.ndarray, stamps: _Stamps, psf: GridPSF) -> np.ndarray:
    """Light of all other stars inside each star's stamp, ``(n, K)`` ADU."""
    own = _star_light(params, stamps, psf)
    return stamps.take(stamps.render(own)) - own


def _model_errors(data: np.ndarray, usable: np.ndarray, stamps: _Stamps, params: np.ndarray,
                  psf: GridPSF, rms: np.ndarray, gain: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Fractional model error per star and whether the star is trusted.

    ``eps`` comes from the robust scatter of the fractional residuals over a star's core
    (model above 10 rms) beyond what the noise explains; stars with fewer than 5 such
    pixels take the median of the others. A star is trusted when ``eps`` is at most
    :data:`MAX_EPS` and no two of its pixels fall :data:`SEED_SIGMA` below the model.
    """
    src = _star_light(params, stamps, psf)
    resid = data - src
    noise2 = rms[:, None] ** 2 + np.maximum(src, 0) / gain
    core = (src > 10 * rms[:, None]) & (usable > 0)
    frac = np.where(core, resid / np.maximum(src, 1e-9), np.nan)
    enough = core.sum(axis=1) >= 5
    eps = np.full(src.shape[0], np.nan)
    if enough.any():
        med = np.nanmedian(frac[enough], axis=1)
        mad = 1.4826 * np.nanmedian(np.abs(frac[enough] - med[:, None]), axis=1)
        floor = np.nanmedian(np.where(core[enough], noise2[enough]
                                      / np.maximum(src[enough], 1e-9) ** 2, np.nan), axis=1)
        eps[enough] = np.sqrt(np.maximum(mad**2 - floor, 0) + med**2)
    eps[~enough] = np.nanmedian(eps[enough]) if enough.any() else 0.05
    var = noise2 + (eps[:, None] * src) ** 2
    window = _window(src, stamps, rms) & (usable > 0)
    deep = np.sum(window & (resid < -SEED_SIGMA * np.sqrt(var)), axis=1)
    return eps, (eps <= MAX_EPS) & (deep < 2)


def star_cosmics(image: np.ndarray, noise: NoiseModel, ignore: np.ndarray,
                 prior: np.ndarray | None = None) -> StarStage:
    """Run the star-profile stage on one image (see the module docstring).

    Parameters
    ----------
    image : numpy.ndarray
        float32 ADU ``(ny, nx)``, finite.
    noise : NoiseModel
        Background, rms and gain.
    ignore : numpy.ndarray
        bool ``(ny, nx)``: saturated and bad pixels.
    prior : numpy.ndarray, optional
        bool ``(ny, nx)``: a first detector's cosmic rays, kept out of the fits.
    """
    shape = image.shape
    empty = np.zeros(shape, bool)
    groups = fit_star_model(image, noise, ignore, prior)
    if groups is None:
        none = np.zeros(0)
        return StarStage(empty, empty, empty, np.zeros(shape, np.float32),
                         StarModel(none, none, none, none, none.astype(bool),
                                   none.astype(bool)), None)
    total, trusted_light, eps_light = (np.zeros(shape, np.float32) for _ in range(3))
    for g in groups:
        light = g.light()
        total += g.stamps.render(light)
        trusted_light += g.stamps.render(light * g.trusted[:, None])
        eps_light += g.stamps.render(light * g.eps[:, None])
    rms = noise.background_rms
    region = ((trusted_light > REGION_SIGMA * rms) & (total - trusted_light < REGION_SIGMA * rms)
              & ~ignore)
    z = np.zeros(shape, np.float32)  # residual over its noise, computed in the region only
    at = np.nonzero(region)
    model_at = total[at]
    var = rms[at] ** 2 + model_at / noise.gain + eps_light[at] ** 2  # eps_light: eps × model
    z[at] = (image[at] - noise.background[at] - model_at) / np.sqrt(var)
    seeds = (z > SEED_SIGMA) & region
    grow = (z > GROW_SIGMA) & region
    cosmic = ndimage.binary_propagation(seeds, np.ones((3, 3), bool), mask=grow)
    def joined(values):
        return np.concatenate([values(g) for g in groups])

    stars = StarModel(joined(lambda g: g.params[:, 1]), joined(lambda g: g.params[:, 2]),
                      joined(lambda g: g.params[:, 0]), joined(lambda g: g.eps),
                      joined(lambda g: g.trusted),
                      joined(lambda g: np.full(g.eps.size, g is not groups[0])))
    explained = region & (z < EXPLAINED_SIGMA)
    faint = (point_source_pixels(image, noise, prior & ~region, ignore, groups[0].psf)
             if prior is not None else empty)
    return StarStage(cosmic, explained | faint, region, trusted_light, stars, groups[0].psf,
                     int(faint.sum()))
