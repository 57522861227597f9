"""Star fields and stamp rendering, checked by recovering the stars with sep."""

from __future__ import annotations

import numpy as np
import pytest
import sep

from skytriage.sky import SCMOS, Gaussian, Moffat, power_law_fluxes, render_stars, star_field
from skytriage.sky import stars as stars_module


def test_power_law_slope_and_limits():
    rng = np.random.default_rng(1)
    flux = power_law_fluxes(200_000, rng, fmin=100.0, fmax=1e6, alpha=2.5)
    assert flux.min() >= 100.0 and flux.max() <= 1e6
    # maximum-likelihood slope of an (effectively untruncated) power law
    alpha = 1 + flux.size / np.log(flux / 100.0).sum()
    assert alpha == pytest.approx(2.5, abs=0.02)
    flat = power_law_fluxes(100_000, rng, fmin=1.0, fmax=100.0, alpha=1.0)
    assert np.median(np.log10(flat)) == pytest.approx(1.0, abs=0.02)


def test_star_field_table_and_catalogue_option():
    rng = np.random.default_rng(2)
    table = star_field((100, 200), 500, rng)
    assert table.colnames == ["x", "y", "flux"]
    assert table["x"].min() >= -0.5 and table["x"].max() <= 199.5
    assert table["y"].max() <= 99.5
    given = star_field((100, 200), None, rng, positions=([1.0, 2.0], [3.0, 4.0]))
    assert list(given["x"]) == [1.0, 2.0] and len(given) == 2


@pytest.mark.parametrize("psf", [Gaussian(2.5), Moffat(3.0, 2.5)], ids=["gauss", "moffat"])
def test_render_conserves_flux_and_is_deterministic(psf):
    rng = np.random.default_rng(3)
    table = star_field((128, 128), 300, rng, fmin=50, fmax=1e5)
    image = np.zeros((128, 128), np.float32)
    render_stars(image, table["x"], table["y"], table["flux"], psf)
    # stars near the edges lose light; those well inside keep all of it
    inner = ((table["x"] > 40) & (table["x"] < 88) & (table["y"] > 40) & (table["y"] < 88))
    single = np.zeros_like(image)
    render_stars(single, table["x"][inner], table["y"][inner], table["flux"][inner], psf,
                 max_radius=24)
    assert single.sum() == pytest.approx(table["flux"][inner].sum(), rel=1e-4)
    again = np.zeros_like(image)
    render_stars(again, table["x"], table["y"], table["flux"], psf)
    np.testing.assert_array_equal(image, again)


def test_phase_table_matches_direct_evaluation(monkeypatch):
    rng = np.random.default_rng(4)
    x, y = rng.uniform(10, 90, 400), rng.uniform(10, 90, 400)
    flux = np.full(400, 1e4)
    psf = Moffat(2.5, 3.0)
    table = np.zeros((100, 100), np.float32)
    render_stars(table, x, y, flux, psf)
    monkeypatch.setattr(stars_module, "PHASES", 10**6)  # forces direct evaluation
    direct = np.zeros((100, 100), np.float32)
    render_stars(direct, x, y, flux, psf)
    assert np.abs(table - direct).max() < 2e-3 * direct.max()


def _grid_field(rng, shape, spacing=40, border=30):
    """Isolated stars on a jittered grid with fluxes 2e3..1e5 e-."""
    gy, gx = np.mgrid[border:shape[0] - border:spacing, border:shape[1] - border:spacing]
    x = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    y = gy.ravel() + rng.uniform(-0.5, 0.5, gy.size)
    flux = np.exp(rng.uniform(np.log(2e3), np.log(1e5), x.size))
    return x, y, flux


def test_sep_recovers_positions_and_fluxes():
    rng = np.random.default_rng(5)
    shape, sky, fwhm = (512, 512), 200.0, 3.0
    x, y, flux = _grid_field(rng, shape)
    camera = SCMOS(gain=0.8, read_noise=1.6, bias=300.0, seed=1)
    signal = np.full(shape, sky, np.float32)
    render_stars(signal, x, y, flux, Moffat(fwhm, 3.0))
    frame = camera.expose(signal, rng, 5.0)
    data = (frame.astype(np.float64) - camera.bias) * camera.gain  # e-
    bkg = sep.Background(data, bw=64, bh=64)
    sub = data - bkg.back()
    objects = sep.extract(sub, 5.0, err=bkg.globalrms, minarea=5)
    # match every true star to its nearest detection
    d2 = (objects["x"][None, :] - x[:, None]) ** 2 + (objects["y"][None, :] - y[:, None]) ** 2
    nearest = d2.argmin(axis=1)
    assert np.sqrt(d2[np.arange(x.size), nearest]).max() < 1.0, "a star was not detected"
    xw, yw, _ = sep.winpos(sub, objects["x"][nearest], objects["y"][nearest], fwhm / 2.355)
    offset = np.hypot(xw - x, yw - y)
    assert np.median(offset) < 0.1
    # aperture photometry at the true positions with a local annulus background; the
    # aperture (5 FWHM) holds 99.86 % of a beta = 3 Moffat. The scatter must be what
    # Poisson + sky + read noise (aperture and annulus) predict.
    radius, annulus = 5 * fwhm, (20.0, 28.0)
    measured, _, _ = sep.sum_circle(data, x, y, radius, bkgann=annulus)
    assert np.median(measured / flux) == pytest.approx(1.0, abs=0.02)
    n_ap, n_ann = np.pi * radius**2, np.pi * (annulus[1] ** 2 - annulus[0] ** 2)
    sigma = np.sqrt(flux + n_ap * (1 + n_ap / n_ann) * (sky + camera.read_noise**2))
    pull = (measured - flux) / sigma
    assert 0.8 < np.std(pull) < 1.25
    assert abs(np.mean(pull)) < 3 / np.sqrt(pull.size)
