"""The crmask simulator: its truth is consistent with its image, and its labels from
repeated exposures (make-training) recover that truth."""

from __future__ import annotations

import numpy as np
import pytest

from skytriage.crmask.simulate import (
    BIT_COSMIC_RAY,
    BIT_SATURATED,
    TRUTH_SIGMA,
    draw_plan,
    simulate_exposure,
    simulate_visits,
    write_exposure,
)


@pytest.fixture(scope="module")
def exposure():
    rng = np.random.default_rng(11)
    plan = draw_plan(rng, (384, 384), fwhm_range=(2.0, 3.0), density_range=(0.02, 0.02))
    plan.star_fmax, plan.full_well = 5e6, 20000.0  # make sure stars saturate and bleed
    return simulate_exposure(plan, rng)


def test_image_is_clean_plus_cosmic_rays(exposure):
    from scipy import ndimage

    gain = exposure.plan.gain
    # bleed trails end in a partly filled pixel that differs between the two images
    unsaturated = ~ndimage.binary_dilation(exposure.mask == BIT_SATURATED, iterations=2)
    diff = (exposure.image - exposure.clean)[unsaturated] * gain
    np.testing.assert_allclose(diff, exposure.cr_charge[unsaturated], atol=0.05 * gain + 1e-3,
                               rtol=1e-4)


def test_truth_mask_is_deposits_above_the_local_noise(exposure):
    noise = np.sqrt(exposure.plan.read_noise**2 + exposure.scene)
    expected = (exposure.cr_charge > TRUTH_SIGMA * noise) & (exposure.mask != BIT_SATURATED)
    assert np.array_equal((exposure.mask & BIT_COSMIC_RAY) > 0, expected)
    density = expected.mean()
    assert 0.02 <= density < 0.03  # the requested density, overshooting little


def test_saturated_pixels_carry_bit_32_never_bit_1(exposure):
    saturated = (exposure.mask & BIT_SATURATED) > 0
    assert saturated.sum() > 10
    assert not np.any(exposure.mask[saturated] & BIT_COSMIC_RAY)
    # a bleed trail: saturated pixels extend along a column beyond the star's core
    cols = np.flatnonzero(saturated.any(axis=0))
    longest = max(np.count_nonzero(saturated[:, c]) for c in cols)
    assert longest > np.count_nonzero(saturated[int(np.argmax(saturated.sum(1)))])


def test_some_hits_land_on_star_cores(exposure):
    star_pixels = exposure.scene - exposure.plan.sky > 10 * np.sqrt(exposure.plan.sky + 25)
    on_stars = ((exposure.mask & BIT_COSMIC_RAY) > 0) & star_pixels
    assert on_stars.sum() > 20


def test_make_training_labels_recover_the_truth(tmp_path):
    from skytriage.crmask.labels import label_exposures

    rng = np.random.default_rng(8)
    plan = draw_plan(rng, (256, 256), fwhm_range=(2.0, 3.0), density_range=(0.005, 0.01))
    visits = simulate_visits(plan, rng, 5)
    paths = [write_exposure(v, tmp_path, f"visit{i}") for i, v in enumerate(visits)]
    labelled = label_exposures(paths)
    tp = fp = fn = 0
    for visit, item in zip(visits, labelled, strict=True):
        truth, found = (visit.mask & 1) > 0, (item.mask & 1) > 0
        tp += np.sum(truth & found)
        fp += np.sum(~truth & found)
        fn += np.sum(truth & ~found)
    assert tp / (tp + fp) > 0.8
    assert tp / (tp + fn) > 0.88
