"""Reference-pixel correction: amplifier common-mode from the border rows, row noise from the
border columns.

Every correction is relative to the first group of its integration, which is all that
group differences need. Offsets are in DN.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from skytriage.errors import SkytriageInputError
from skytriage.ramp.source import RampSource

#: Gaussian smoothing of the row offsets along y (rows): the border columns give only
#: ``2 * refpix`` pixels per row, so the correction averages over neighbouring rows.
ROW_SMOOTHING = 4.0


def channel_of_column(nx: int, n_outputs: int) -> np.ndarray:
    """Output channel of every column (vertical stripes of equal width), int ``(nx,)``."""
    return np.minimum(np.arange(nx) * n_outputs // nx, n_outputs - 1)


def channel_offsets(source: RampSource, refpix: int, n_outputs: int) -> np.ndarray:
    """Common-mode offset of every output at every read, relative to the first group.

    Parameters
    ----------
    source : RampSource
    refpix : int
        Border width (px); 0 gives zero offsets.
    n_outputs : int
        Readout channels (vertical stripes).

    Returns
    -------
    numpy.ndarray
        float32 DN, shape ``(ints, groups, n_outputs)``: median over the reference rows
        (top and bottom) of each channel of ``read - first read``. NaN reference pixels
        are ignored.

    Raises
    ------
    SkytriageInputError
        When every reference pixel of a channel is NaN (use ``refpix=0`` for such data).
    """
    ints, groups, ny, nx = source.shape
    out = np.zeros((ints, groups, n_outputs), np.float32)
    if refpix == 0:
        return out
    rows = np.r_[0:refpix, ny - refpix:ny]
    channel = channel_of_column(nx, n_outputs)
    for integration in range(ints):
        reads = source.rows(integration, rows)
        relative = reads - reads[:1]
        for c in range(n_outputs):
            block = relative[:, :, channel == c].reshape(groups, -1)
            if not np.isfinite(block[1:]).any():
                raise SkytriageInputError(source.path, f"reference pixels of output {c} "
                                                       f"are all NaN (use --refpix 0)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[integration, :, c] = np.nan_to_num(np.nanmedian(block, axis=1))
    return out


def correct_band(reads: np.ndarray, offsets: np.ndarray, refpix: int,
                 channel: np.ndarray) -> np.ndarray:
    """Remove common-mode and row offsets from one band of reads, in place.

    The row offset is the median of the border columns of each row (robust to a border
    pixel disturbed by a bright neighbour), smoothed along y.

    Parameters
    ----------
    reads : numpy.ndarray
        float32 DN, ``(groups, rows, nx)`` of one integration (the band's rows, with
        some margin so that the row smoothing has context).
    offsets : numpy.ndarray
        ``(groups, n_outputs)`` from :func:`channel_offsets` for this integration.
    refpix : int
        Border width (px); 0 skips the row correction.
    channel : numpy.ndarray
        Channel of every column.

    Returns
    -------
    numpy.ndarray
        ``reads``, corrected.
    """
    reads -= offsets[:, None, channel]
    if refpix == 0:
        return reads
    sides = np.concatenate([reads[:, :, :refpix], reads[:, :, -refpix:]], axis=2)
    relative = sides - sides[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_row = np.nan_to_num(np.nanmedian(relative, axis=2))
    smooth = ndimage.gaussian_filter1d(per_row, ROW_SMOOTHING, axis=1, mode="nearest")
    reads -= smooth[:, :, None]
    return reads


def reference_read_noise(source: RampSource, refpix: int, n_outputs: int,
                         offsets: np.ndarray) -> float | None:
    """Read noise per read (DN) measured on the reference rows, or None without a border.

    The robust (MAD) scatter of group differences of reference pixels, after the
    common-mode offsets, divided by sqrt(2).
    """
    if refpix == 0:
        return None
    ints, groups, ny, nx = source.shape
    rows = np.r_[0:refpix, ny - refpix:ny]
    reads = source.rows(0, rows) - offsets[0][:, None, channel_of_column(nx, n_outputs)]
    diffs = np.diff(reads, axis=0)
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size < 16:
        return None
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(1.4826 * mad / np.sqrt(2))
