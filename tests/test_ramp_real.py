"""The JWST FGS acquisition ramp from the jwst package's test data (``make real-data``):
six integrations of two groups, so each difference is judged against the other
integrations of the same pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skytriage.ramp import run
from skytriage.ramp.detect import CR, RTN, SNOWBALL

FGS = Path(__file__).resolve().parents[1] / ".cache" / "real-data" / "add_wcs_default_acq1.fits"

pytestmark = pytest.mark.skipif(not FGS.exists(), reason="run `make real-data` first")


def test_fgs_acquisition_ramp():
    result = run(FGS, refpix=0)  # a 128x128 subarray: no reference pixels
    assert result.mask.shape == (128, 128) and result.mask.dtype == np.uint16
    assert result.info["shape"] == [6, 2, 128, 128]
    # read noise measured from the data (no RDNOISE card): FGS reads are ~5-15 DN
    assert 3 < result.info["read_noise_e"] < 20
    # the slope image is the mean difference of each pixel
    raw = fits.getdata(FGS, "SCI").astype(np.float64)
    mean_diff = (raw[:, 1] - raw[:, 0]).mean(axis=0)
    quiet = result.mask == 0
    assert np.corrcoef(result.slope[quiet], mean_diff[quiet])[0, 1] > 0.99
    # few flags: under 0.5 % of the pixels, no telegraph noise or snowballs in 2 groups
    assert (result.mask & CR > 0).mean() < 0.005
    assert not (result.mask & (RTN | SNOWBALL)).any()
