"""Put the reference on the science image's pixel grid.

With a celestial WCS in both headers, the WCS gives the first guess; without, the two star
lists are matched by their triangles (astroalign). Either way the transform is refined by
a least-squares affine fit to the stars matched within 2 px, then the reference is
resampled with bicubic interpolation (OpenCV).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from scipy.spatial import cKDTree

from skytriage.errors import SkytriageInputError

#: Least stars that must match to trust an alignment.
MIN_MATCHED = 6
#: Least fraction of the science image the reference must cover.
MIN_OVERLAP = 0.05


@dataclass
class Alignment:
    """Affine map from science pixels to reference pixels.

    Attributes
    ----------
    matrix : numpy.ndarray
        ``(2, 3)``: ``[x_ref, y_ref] = matrix @ [x_sci, y_sci, 1]`` (0-based px).
    method : str
        ``"wcs"`` or ``"stars"``: where the first guess came from.
    n_matched : int
        Stars used in the final fit.
    rms : float
        Residual of the fit (px).
    """

    matrix: np.ndarray
    method: str
    n_matched: int
    rms: float


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The header's celestial WCS, or None when it has none."""
    if "CTYPE1" not in header:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception:  # astropy raises many types for a broken WCS
            return None
    return wcs if wcs.has_celestial else None


def _wcs_guess(sci_header: fits.Header, ref_header: fits.Header,
               shape: tuple[int, int]) -> np.ndarray | None:
    """Affine science->reference px through the sky, fitted on a 5x5 grid; None without WCS."""
    sci_wcs, ref_wcs = celestial_wcs(sci_header), celestial_wcs(ref_header)
    if sci_wcs is None or ref_wcs is None:
        return None
    ny, nx = shape
    gy, gx = np.meshgrid(np.linspace(0, ny - 1, 5), np.linspace(0, nx - 1, 5), indexing="ij")
    world = sci_wcs.pixel_to_world_values(gx.ravel(), gy.ravel())
    rx, ry = ref_wcs.world_to_pixel_values(*world)
    return _fit_affine(np.stack([gx.ravel(), gy.ravel()], 1), np.stack([rx, ry], 1))


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares ``(2, 3)`` affine with ``dst ~ A @ [src, 1]``."""
    design = np.column_stack([src, np.ones(len(src))])
    solution, *_ = np.linalg.lstsq(design, dst, rcond=None)
    return solution.T


def _apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ matrix[:, :2].T + matrix[:, 2]


def _triangle_guess(sci_xy: np.ndarray, ref_xy: np.ndarray, path: str) -> np.ndarray:
    """Similarity transform science->reference from astroalign's triangle matching."""
    import astroalign

    error = None
    for n in (30, 50, 80):  # the brightest first; more when their triangles do not agree
        try:
            transform, _ = astroalign.find_transform(sci_xy[:n], ref_xy[:n])
            break
        except (astroalign.MaxIterError, ValueError, TypeError) as err:
            error = err
    else:
        raise SkytriageInputError(path, f"could not match stars with the reference ({error}); "
                                        "no overlap, or too few stars")
    return transform.params[:2]


def _refine(matrix: np.ndarray, sci_xy: np.ndarray, ref_xy: np.ndarray,
            radius: float = 2.0) -> tuple[np.ndarray, int, float]:
    """Affine fit to stars matched within ``radius`` px; three rounds of 3-sigma clipping."""
    tree = cKDTree(ref_xy)
    n, rms = 0, np.inf
    for _ in range(3):
        dist, index = tree.query(_apply(matrix, sci_xy), distance_upper_bound=radius)
        ok = np.isfinite(dist)
        if ok.sum() < MIN_MATCHED:
            break
        src, dst = sci_xy[ok], ref_xy[index[ok]]
        matrix = _fit_affine(src, dst)
        residual = np.hypot(*(_apply(matrix, src) - dst).T)
        keep = residual < max(3 * np.median(residual) * 1.4826, 0.05)
        matrix = _fit_affine(src[keep], dst[keep])
        n = int(keep.sum())
        rms = float(np.sqrt(np.mean(np.sum((_apply(matrix, src[keep]) - dst[keep]) ** 2, 1))))
        radius = max(1.0, 4 * rms)
    return matrix, n, rms


def coverage_fraction(matrix: np.ndarray, sci_shape: tuple[int, int],
                      ref_shape: tuple[int, int]) -> float:
    """Fraction of the science image that lands inside the reference (sampled on a grid)."""
    ny, nx = sci_shape
    gy, gx = np.meshgrid(np.linspace(0, ny - 1, 64), np.linspace(0, nx - 1, 64), indexing="ij")
    rx, ry = _apply(matrix, np.stack([gx.ravel(), gy.ravel()], 1)).T
    inside = (rx >= 0) & (rx <= ref_shape[1] - 1) & (ry >= 0) & (ry <= ref_shape[0] - 1)
    return float(inside.mean())


def align(sci_xy: np.ndarray, ref_xy: np.ndarray, sci_header: fits.Header,
          ref_header: fits.Header, sci_shape: tuple[int, int], ref_shape: tuple[int, int],
          path: str) -> Alignment:
    """Find the science->reference transform.

    Parameters
    ----------
    sci_xy, ref_xy : numpy.ndarray
        ``(n, 2)`` star positions (px), brightest first.
    sci_header, ref_header : astropy.io.fits.Header
        Headers, for a WCS.
    sci_shape, ref_shape : (int, int)
        Image shapes.
    path : str
        The science file, named in errors.

    Raises
    ------
    SkytriageInputError
        When the images do not overlap or their stars cannot be matched.
    """
    guess = _wcs_guess(sci_header, ref_header, sci_shape)
    method = "wcs"
    if guess is None:
        method = "stars"
        if len(sci_xy) < MIN_MATCHED or len(ref_xy) < MIN_MATCHED:
            raise SkytriageInputError(path, "too few stars to align the images (and no WCS)")
        guess = _triangle_guess(sci_xy, ref_xy, path)
    if coverage_fraction(guess, sci_shape, ref_shape) < MIN_OVERLAP:
        raise SkytriageInputError(path, "no overlap with the reference image")
    matrix, n, rms = _refine(guess, sci_xy, ref_xy)
    if n < MIN_MATCHED:
        if method == "wcs":
            return Alignment(guess, "wcs", 0, float("nan"))
        raise SkytriageInputError(path, f"only {n} stars matched the reference")
    if coverage_fraction(matrix, sci_shape, ref_shape) < MIN_OVERLAP:
        raise SkytriageInputError(path, "no overlap with the reference image")
    return Alignment(matrix, method, n, rms)


def warp_to(image: np.ndarray, alignment: Alignment, shape: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``image`` (the reference) onto the science grid.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float32 image of ``shape`` (0 outside the reference) and a bool map of the pixels
        the reference covers fully (its 2-px border excluded).
    """
    ny, nx = shape
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    matrix = alignment.matrix.astype(np.float64)
    out = cv2.warpAffine(image.astype(np.float32), matrix, (nx, ny), flags=flags,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    ones = np.zeros(image.shape, np.uint8)
    ones[2:-2, 2:-2] = 1
    covered = cv2.warpAffine(ones, matrix, (nx, ny), flags=cv2.INTER_NEAREST
                             | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0).astype(bool)
    return out, covered
