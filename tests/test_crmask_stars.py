"""The star-profile stage: a known field of Moffat stars, hits placed on their cores."""

from __future__ import annotations

import numpy as np
import pytest

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
