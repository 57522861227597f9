"""The point-source test: faint undersampled stars and cosmic-ray spots of the same
brightness, all flagged by a would-be detector; the test gives back the stars, with the
true profile and with the one :func:`fit_profile` measures on the image's bright stars."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from skytriage.crmask.detect import noise_model
from skytriage.crmask.pipeline import run
from skytriage.crmask.pointsource import point_source_pixels
from skytriage.crmask.stars import GridPSF, fit_profile
from skytriage.sky.psf import Moffat
from skytriage.sky.stars import render_stars

GAIN, READ_NOISE, SKY = 2.0, 5.0, 200.0  # e-/ADU, e-, e- per pixel
FWHM, BETA = 1.8, 3.0
SIZE, STEP = 480, 24


def make_scene(bright_stars: bool = False):
    """A 480² exposure (ADU): on a 24-px grid, alternately a faint star (peak 7-20 sigma
    of the sky) and a cosmic-ray spot (Gaussian, sigma 0.25-0.6 px, same peak range); every
    sixth star also takes a hit of 12 sigma on its peak pixel; with ``bright_stars``, a
    star of peak 40-400 sigma halfway between grid nodes. Returns the image, the flagged
    map (each feature's 3x3 core), star and spot labels, and the hit pixels."""
    rng = np.random.default_rng(8)
    grid = np.arange(STEP, SIZE - STEP, STEP, dtype=float)
    gx, gy = (v.ravel() + rng.uniform(-0.5, 0.5, v.size) for v in np.meshgrid(grid, grid))
    is_star = (np.arange(gx.size) % 2) == 0
    sky_rms = np.sqrt(READ_NOISE**2 + SKY)
    peak = rng.uniform(7, 20, gx.size) * sky_rms
    psf = Moffat(FWHM, beta=BETA)
    unit = render_stars(np.zeros((9, 9), np.float32), [4.0], [4.0], [1.0], psf).max()
    electrons = render_stars(np.zeros((SIZE, SIZE), np.float32), gx[is_star], gy[is_star],
                             peak[is_star] / unit, psf)
    if bright_stars:
        bx, by = (v.ravel() + STEP / 2 + rng.uniform(-0.5, 0.5, v.size)
                  for v in np.meshgrid(grid[:-1], grid[:-1]))
        electrons = render_stars(electrons, bx, by,
                                 rng.uniform(40, 400, bx.size) * sky_rms / unit, psf)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for x, y, p, s in zip(gx[~is_star], gy[~is_star], peak[~is_star],
                          rng.uniform(0.25, 0.6, (~is_star).sum()), strict=True):
        box = (slice(int(y) - 4, int(y) + 5), slice(int(x) - 4, int(x) + 5))
        spot = np.exp(-0.5 * ((xx[box] - x) ** 2 + (yy[box] - y) ** 2) / s**2)
        electrons[box] += p * spot / spot.max()
    electrons = rng.poisson(electrons + SKY).astype(np.float32) - SKY
    electrons += rng.normal(0, READ_NOISE, electrons.shape).astype(np.float32)
    ix, iy = np.floor(gx + 0.5).astype(int), np.floor(gy + 0.5).astype(int)
    hit = np.zeros((SIZE, SIZE), bool)
    hit_stars = np.flatnonzero(is_star)[::6]
    hit[iy[hit_stars], ix[hit_stars]] = True
    electrons[hit] += 12 * sky_rms
    feature = np.zeros((SIZE, SIZE), int)
    for k, (x, y) in enumerate(zip(ix, iy, strict=True)):
        feature[y - 1:y + 2, x - 1:x + 2] = k + 1
    return (electrons + SKY) / GAIN, feature, is_star, hit


@pytest.fixture(scope="module")
def scene():
    return make_scene()


@pytest.fixture(scope="module")
def bright_scene():
    return make_scene(bright_stars=True)


def given_back(back: np.ndarray, feature: np.ndarray, n: int) -> np.ndarray:
    """bool ``(n,)``: features with at least one pixel given back."""
    return ndimage.sum(back, feature, np.arange(1, n + 1)) > 0


def test_faint_stars_are_given_back_and_spots_stay_flagged(scene):
    image, feature, is_star, hit = scene
    flagged = feature > 0
    ignore = np.zeros(image.shape, bool)
    noise = noise_model(image, GAIN, ignore=ignore)
    back = point_source_pixels(image, noise, flagged, ignore, GridPSF.moffat(FWHM, BETA))
    given = given_back(back, feature, is_star.size)
    clean_star = is_star.copy()
    clean_star[np.flatnonzero(is_star)[::6]] = False
    assert given[clean_star].mean() >= 0.8
    assert given[~is_star].mean() <= 0.05
    # A hit on a star's peak stays flagged even where the star around it is given back.
    assert not back[hit].any()


def test_profile_fitted_on_the_bright_stars_gives_the_faint_ones_back(bright_scene):
    image, feature, is_star, hit = bright_scene
    flagged = feature > 0
    ignore = np.zeros(image.shape, bool)
    noise = noise_model(image, GAIN, ignore=ignore)
    psf = fit_profile(image, noise, ignore, prior=flagged)
    assert abs(psf.shape["fwhm"] - FWHM) < 0.1
    given = given_back(point_source_pixels(image, noise, flagged, ignore, psf), feature,
                       is_star.size)
    clean_star = is_star.copy()
    clean_star[np.flatnonzero(is_star)[::6]] = False
    assert given[clean_star].mean() >= 0.8
    assert given[~is_star].mean() <= 0.05


def test_crmask_gives_back_faint_star_cores_and_keeps_spots_and_hits(bright_scene):
    """By default crmask runs the test after its detector (here L.A.Cosmic, which flags
    many faint undersampled cores): it only unflags, clears most flagged clean stars, and
    keeps every spot and every hit on a star that the detector found."""
    image, feature, is_star, hit = bright_scene
    raw = run(image, gain=GAIN, method="lacosmic", point_source_test=False).cosmic_rays
    tested = run(image, gain=GAIN, method="lacosmic")
    assert not np.any(tested.cosmic_rays & ~raw)
    assert tested.info["faint_star_pixels_unflagged"] == int(np.sum(raw & ~tested.cosmic_rays))
    clean_star = is_star.copy()
    clean_star[np.flatnonzero(is_star)[::6]] = False
    before = given_back(raw, feature, is_star.size)
    after = given_back(tested.cosmic_rays, feature, is_star.size)
    assert before[clean_star].sum() >= 15
    assert after[clean_star].sum() <= 0.5 * before[clean_star].sum()
    assert after[before & ~is_star].mean() >= 0.95
    assert tested.cosmic_rays[hit & raw].all()
