"""PSFs: normalisation, sub-pixel centring, widths, footprints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skytriage.sky import Donut, Gaussian, Moffat, Streak, Trailed
from skytriage.sky.psf import capsule_footprint

PSFS = [Gaussian(3.0), Moffat(3.0, 3.0), Donut(8.0, 0.4, 1.0), Trailed(Moffat(3.0), 8.0, 30.0),
        Streak(20.0, 30.0, 3.0)]


def _moments(stamp: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Centroid offset from the stamp centre (x, y) and 2x2 second-moment matrix (px^2)."""
    c = (stamp.shape[0] - 1) / 2
    yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]] - c
    mx, my = (stamp * xx).sum(), (stamp * yy).sum()
    dx, dy = xx - mx, yy - my
    cov = np.array([[(stamp * dx * dx).sum(), (stamp * dx * dy).sum()],
                    [(stamp * dx * dy).sum(), (stamp * dy * dy).sum()]])
    return mx, my, cov


@pytest.mark.parametrize("psf", PSFS, ids=lambda p: type(p).__name__)
def test_stamp_is_normalised_and_centred_to_subpixel(psf):
    stamp = psf.stamp(61, dx=0.3, dy=-0.2)
    assert stamp.dtype == np.float32
    assert stamp.sum() == pytest.approx(1.0, abs=1e-5)
    mx, my, _ = _moments(stamp)
    assert mx == pytest.approx(0.3, abs=0.01)
    assert my == pytest.approx(-0.2, abs=0.01)


def test_gaussian_pixel_integration_is_exact():
    psf = Gaussian(2.0)
    _, _, cov = _moments(psf.stamp(41))
    # pixel integration adds the variance of the unit box, 1/12 px^2
    assert cov[0, 0] == pytest.approx(psf.sigma**2 + 1 / 12, rel=1e-3)


@pytest.mark.parametrize("fwhm", [2.0, 3.0, 5.0])
def test_moffat_fwhm(fwhm):
    psf = Moffat(fwhm, 3.5, oversample=9)
    profile = psf.profile(np.linspace(0, 2 * fwhm, 2001, dtype=np.float32), np.float32(0))
    half = np.interp(profile[0] / 2, profile[::-1], np.linspace(0, 2 * fwhm, 2001)[::-1])
    assert 2 * half == pytest.approx(fwhm, rel=1e-3)


def test_donut_has_a_dark_centre():
    stamp = Donut(8.0, 0.4, 0.8).stamp(41)
    assert stamp[20, 20] < 0.1 * stamp.max()
    assert stamp[20, 20 + 6] == pytest.approx(stamp.max(), rel=0.2)


def test_trailed_and_streak_elongate_along_the_angle():
    length, sigma = 8.0, Gaussian(3.0).sigma
    _, _, cov = _moments(Trailed(Gaussian(3.0), length, 0.0).stamp(61))
    assert cov[0, 0] == pytest.approx(sigma**2 + 1 / 12 + length**2 / 12, rel=0.03)
    assert cov[1, 1] == pytest.approx(sigma**2 + 1 / 12, rel=0.03)
    _, _, cov = _moments(Streak(30.0, 90.0, 3.0).stamp(61))
    assert cov[1, 1] > 10 * cov[0, 0]


def test_radius_grows_with_flux():
    psf = Moffat(3.0, 3.0)
    r = psf.radius(np.array([10.0, 1e3, 1e6]), 0.5)
    assert r[0] >= 1.5 * 3.0 and r[0] < r[1] < r[2]


def test_capsule_footprint_covers_the_segment_only():
    oy, ox = capsule_footprint(3, 40.0, 30.0)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    along = ox * c + oy * s
    across = -ox * s + oy * c
    assert np.abs(across).max() <= 3.5 + 1e-9
    assert along.max() == pytest.approx(23, abs=1.5)
    disk_y, disk_x = capsule_footprint(5)
    assert disk_y.size == np.count_nonzero(
        np.hypot(*np.mgrid[-6:7, -6:7]) <= 5.5)


def test_streak_rejects_zero_length():
    with pytest.raises(ValueError, match="length"):
        Streak(0.0, 0.0, 3.0)
