"""The star-profile stage: a known field of Moffat stars, hits placed on their cores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from skytriage.crmask import run
from skytriage.crmask.detect import noise_model
from skytriage.crmask.stars import star_cosmics
from skytriage.sky.psf import Moffat
from skytriage.sky.stars import render_stars

GAIN, READ_NOISE, SKY = 2.0, 5.0, 200.0  # e-/ADU, e-, e- per pixel
FWHM, BETA = 2.6, 2.4
PROFILE_ERROR = 0.03


@pytest.fixture(scope="module")
def field():
    """A 384² exposure (ADU) of 144 isolated stars, every other one with a hit on its peak
    pixel that stands 8 sigma above the pixel's noise and a 3 % profile error; returns
    image, noiseless stars (ADU), the peak pixels and the hit pixels."""
    rng = np.random.default_rng(31)
    grid = np.arange(24, 384 - 24, 28.0)
    x, y = (v.ravel() + rng.uniform(-0.5, 0.5, v.size) for v in np.meshgrid(grid, grid))
    flux = 10 ** rng.uniform(3.5, 5.5, x.size)
    stars_e = render_stars(np.zeros((384, 384), np.float32), x, y, flux,
                           Moffat(FWHM, beta=BETA))
    electrons = rng.poisson(stars_e + SKY).astype(np.float32)
    electrons += rng.normal(0, READ_NOISE, electrons.shape).astype(np.float32)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    hit = np.zeros(electrons.shape, bool)
    hit[iy[::2], ix[::2]] = True
    noise_e = np.sqrt(READ_NOISE**2 + SKY + stars_e + (PROFILE_ERROR * stars_e) ** 2)
    electrons[hit] += 8 * noise_e[hit]
    return electrons / GAIN, stars_e / GAIN, (ix, iy), hit


def test_star_model_finds_core_hits_and_leaves_clean_cores(field):
    image, stars_adu, (ix, iy), hit = field
    ignore = np.zeros(image.shape, bool)
    stage = star_cosmics(image, noise_model(image, GAIN, ignore=ignore), ignore)
    # The profile is fitted, not assumed: the model matches the noiseless stars to a few %.
    core = stage.region & (stars_adu > 50 * np.sqrt(SKY) / GAIN)
    error = np.abs(stage.model[core] - stars_adu[core]) / stars_adu[core]
    assert np.median(error) < 0.03
    # Every hit stands 8 sigma above what the star explains: the stage finds nearly all ...
    assert stage.cosmic[hit].mean() >= 0.85
    # ... and flags almost no clean peak, nor anything away from the hits.
    assert stage.cosmic[iy[1::2], ix[1::2]].mean() <= 0.03
    away = ~np.pad(hit, 1)[:-2, 1:-1] & ~hit
    assert np.count_nonzero(stage.cosmic & away) <= 0.1 * hit.sum()


def test_star_model_option_recovers_core_hits_the_network_misses(field):
    image, _, (ix, iy), hit = field
    plain = run(image, gain=GAIN, readnoise=READ_NOISE)
    fitted = run(image, gain=GAIN, readnoise=READ_NOISE, star_model=True)
    assert fitted.info["star_model"] and fitted.info["stars_trusted"] >= 100
    assert fitted.cosmic_rays[hit].mean() >= max(0.85, plain.cosmic_rays[hit].mean() + 0.1)
    assert fitted.cosmic_rays[iy[1::2], ix[1::2]].sum() <= plain.cosmic_rays[iy[1::2],
                                                                             ix[1::2]].sum()


FULL_WELL = 60000.0  # e-


@pytest.fixture(scope="module")
def saturated_field():
    """A 384² exposure (ADU) of 9 stars that saturate and bleed along their columns among
    36 unsaturated ones; every saturated star has hits of 8 sigma on 6 wing pixels where its
    light exceeds 10 background rms. Returns image, noiseless stars (ADU), stars (x, y,
    flux ADU), saturated stars' indices, the hit pixels and the saturation mask."""
    from skytriage.crmask.simulate import _bleed

    rng = np.random.default_rng(47)
    grid = np.arange(32, 384 - 32, 64.0)
    x, y = (v.ravel() + rng.uniform(-0.5, 0.5, v.size) for v in np.meshgrid(grid, grid))
    flux = 10 ** rng.uniform(4.0, 5.3, x.size)
    bright = np.arange(0, x.size, 4)
    flux[bright] = 10 ** rng.uniform(6.3, 6.9, bright.size)
    stars_e = render_stars(np.zeros((384, 384), np.float32), x, y, flux,
                           Moffat(FWHM, beta=BETA))
    electrons = rng.poisson(stars_e + SKY).astype(np.float32)
    electrons += rng.normal(0, READ_NOISE, electrons.shape).astype(np.float32)
    noise_e = np.sqrt(READ_NOISE**2 + SKY + stars_e)
    hit = np.zeros(electrons.shape, bool)
    yy, xx = np.mgrid[:384, :384]
    for i in bright:
        r = np.hypot(xx - x[i], yy - y[i])
        wing = (r > 5) & (r < 9) & (stars_e > 10 * np.sqrt(SKY + READ_NOISE**2)) \
            & (np.abs(xx - x[i]) > 2)
        hit.ravel()[rng.choice(np.flatnonzero(wing), 6, replace=False)] = True
    electrons[hit] += 8 * noise_e[hit]
    saturated = _bleed(electrons, FULL_WELL)
    hit &= ~saturated
    return electrons / GAIN, stars_e / GAIN, (x, y, flux / GAIN), bright, hit, saturated


def test_saturated_stars_are_fitted_by_their_wings(saturated_field):
    from skytriage.crmask.detect import saturation_mask

    image, stars_adu, (x, y, flux), bright, hit, _ = saturated_field
    ignore = saturation_mask(image, FULL_WELL / GAIN)
    stage = star_cosmics(image, noise_model(image, GAIN, ignore=ignore), ignore)
    stars = stage.stars
    assert stars.saturated.sum() == bright.size and stars.trusted.all()
    # The wings refine the profile: FWHM 2.59, beta 2.44 measured (2.6 and 2.4 true) ...
    assert abs(stage.psf.shape["fwhm"] - FWHM) < 0.05 and abs(stage.psf.shape["beta"]
                                                                - BETA) < 0.1
    # ... each saturated star's centre and flux come back from its wings alone ...
    for i in bright:
        k = np.argmin(np.hypot(stars.x - x[i], stars.y - y[i]) + 1e3 * ~stars.saturated)
        assert np.hypot(stars.x[k] - x[i], stars.y[k] - y[i]) < 0.1
        assert abs(stars.flux[k] / flux[i] - 1) < 0.1
    # ... the model matches the noiseless wings to a few per cent ...
    wing = ndimage.binary_dilation(ignore, iterations=12) & ~ignore \
        & (stars_adu > 10 * np.sqrt(SKY + READ_NOISE**2) / GAIN)
    assert np.median(np.abs(stage.model[wing] / stars_adu[wing] - 1)) < 0.03
    # ... so the hits on their wings stand out, and little else does.
    assert stage.cosmic[hit].mean() >= 0.8
    away = ~ndimage.binary_dilation(hit, np.ones((3, 3), bool))
    assert np.count_nonzero(stage.cosmic & away) <= 0.2 * hit.sum()


def test_bright_unsaturated_star_flux_is_exact():
    """A star of 10⁶ ADU fitted from a start at half its flux: the Gauss-Newton steps
    must not be damped by the flux scale."""
    from skytriage.crmask.stars import GridPSF, _fit, _Stamps

    psf = GridPSF.moffat(FWHM, BETA)
    stamps = _Stamps((64, 64), np.array([32]), np.array([32]))
    truth = np.array([[1e6, 32.3, 31.8]])
    data = truth[0, 0] * psf.evaluate(stamps.kx + 32 - 32.3, stamps.ky + 32 - 31.8)[0][None]
    usable = np.ones_like(data)
    start = np.array([[5e5, 32.0, 32.0]])
    fitted = _fit(data, usable, stamps, np.array([0]), start, psf, np.array([25.0]), GAIN,
                  np.array([0.03]), steps=6)
    assert abs(fitted[0, 0] / 1e6 - 1) < 0.002
    assert np.hypot(fitted[0, 1] - 32.3, fitted[0, 2] - 31.8) < 0.01


def test_a_prior_that_flags_every_core_leaves_the_stage_silent(field):
    image, _, (ix, iy), _ = field
    ignore = np.zeros(image.shape, bool)
    prior = np.zeros(image.shape, bool)
    prior[iy, ix] = True
    prior = ndimage.binary_dilation(prior, iterations=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stage = star_cosmics(image, noise_model(image, GAIN, ignore=ignore), ignore, prior)
    assert stage.psf is None and not stage.cosmic.any() and not stage.explained.any()
