"""``skytriage.transients.run``: difference, candidates, CNN scores, photometry, catalogue."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table

from skytriage.io import write_ecsv, write_fits
from skytriage.nn import tile_starts
from skytriage.transients.detect import (
    DETECTION_THRESHOLD,
    PreparedPair,
    find_candidates,
    prepare_images,
    prepare_pair,
)
from skytriage.transients.model import OVERLAP, TILE, TransientScorer, cut_tiles, triplet_planes
from skytriage.transients.photometry import (
    aperture_flux,
    classify,
    magnitudes,
    psf_fit_flux,
    sharpness,
)

#: Candidates the CNN scores at or above this are claimed as transients (on diagnosis
#: pairs, seeds 5000-5013 and 5100-5111, 0.3 to 0.6 gave the same completeness once cosmic
#: rays were cleaned before subtraction; before, 0.5 lost 0.8 % of the S/N >= 10 ones
#: against 0.3).
SCORE_THRESHOLD = 0.5
#: Grid tiles the grid CNN scores at or above this hold a transient.
GRID_SCORE_THRESHOLD = 0.5
#: A candidate whose CNN offset points farther than this (px) is not the tile's transient.
MAX_REFINE = 3.0
#: Candidates sharper than this (peak over the PSF fit's peak: see
#: :func:`candidate_sharpness`) are cosmic rays or hot pixels, and those at or below 0 are
#: not point sources (rings around saturated stars), whatever the CNN says.
MAX_SHARPNESS = 1.5
#: Candidates are not looked for within this distance (px) of saturated pixels, and those
#: whose peak lies within ``MASK_GROW + EDGE_PEAK`` px are the cut-off slopes of rings
#: around saturated stars (the peak sits on the edge of the search area), not sources.
MASK_GROW = 3
EDGE_PEAK = 2
#: Claims closer than this (px) are one transient.
MERGE_RADIUS = 2.0
CATALOGUE_COLUMNS = ["x", "y", "score", "flux", "flux_err", "mag_diff", "kind", "snr",
                     "delta_mag", "flux_sci", "flux_ref", "flux_psf", "sharpness", "x_cnn",
                     "y_cnn"]


@dataclass
class TransientResult:
    """What :func:`run` found.

    Attributes
    ----------
    transients : pandas.DataFrame
        One row per claimed transient: ``x, y`` (science px, 0-based), ``score`` (CNN
        probability real; NaN with ``use_cnn=False``), ``flux`` (aperture flux of the
        difference, science ADU), ``flux_err``, ``mag_diff``, ``kind``, ``snr`` (S_corr
        peak), ``delta_mag``, ``flux_sci``, ``flux_ref`` (PSF fits, science ADU),
        ``flux_psf`` (PSF fit on the difference), ``sharpness`` (peak over PSF-fit peak,
        see :func:`candidate_sharpness`), ``x_cnn, y_cnn`` (the CNN's position). ``x, y``
        is the S_corr peak.
    candidates : pandas.DataFrame
        Every candidate with the same columns and ``claimed``.
    prepared : PreparedPair
        Aligned images, masks, difference.
    meta : dict
        Zero point and its source, alignment, thresholds, timings.
    """

    transients: pd.DataFrame
    candidates: pd.DataFrame
    prepared: PreparedPair
    meta: dict = field(default_factory=dict)

    def write(self, out_dir: str | os.PathLike, *, report: bool = True) -> dict[str, Path]:
        """Write ``transients.ecsv``, ``candidates.ecsv``, ``diff.fits``, ``scorr.fits`` and
        ``report.html`` into ``out_dir``; returns the paths by name."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"transients": out / "transients.ecsv", "candidates": out / "candidates.ecsv",
                 "diff": out / "diff.fits", "scorr": out / "scorr.fits"}
        write_ecsv(paths["transients"], self.catalogue_table(self.transients))
        write_ecsv(paths["candidates"], self.catalogue_table(self.candidates))
        sub = self.prepared.subtraction
        provenance = {"command": "skytriage transients", "parameters": {
            "zero_point": self.meta.get("zero_point"), "method": self.meta.get("method")}}
        write_fits(paths["diff"], sub.diff, _diff_header(self), provenance=provenance)
        write_fits(paths["scorr"], sub.score, provenance=provenance)
        if report:
            from skytriage.transients.report import write_report

            paths["report"] = write_report(self, out / "report.html")
        return paths

    def catalogue_table(self, frame: pd.DataFrame) -> Table:
        """An astropy Table with units and the run's metadata (zero point or its absence)."""
        table = Table.from_pandas(frame.reset_index(drop=True))
        for name in ("x", "y", "x_cnn", "y_cnn"):
            if name in table.colnames:
                table[name].unit = "pix"
        for name in ("flux", "flux_err", "flux_sci", "flux_ref", "flux_psf"):
            if name in table.colnames:
                table[name].unit = "adu"
        for name in ("mag_diff", "delta_mag"):
            if name in table.colnames:
                table[name].unit = "mag"
        table.meta.update({k: v for k, v in self.meta.items() if k != "timings"})
        return table


def _diff_header(result: TransientResult):
    from astropy.io import fits

    header = fits.Header()
    sub = result.prepared.subtraction
    header["BUNIT"] = ("adu", "science ADU: a point source sums to its flux")
    header["DIFFNOIS"] = (sub.diff_noise, "per-pixel noise of the difference (ADU)")
    header["FLXRATIO"] = (sub.flux_ratio, "science ADU per reference ADU")
    if result.meta.get("zero_point") is not None:
        header["MAGZP"] = (result.meta["zero_point"], "science zero point")
    return header


def score_candidates(prepared: PreparedPair, candidates: pd.DataFrame,
                     scorer: TransientScorer) -> pd.DataFrame:
    """CNN score and refined position of every candidate.

    Each candidate's 64x64 (ref, sci, diff) tile is centred on its S_corr peak pixel.
    When the CNN's position (``x_cnn, y_cnn``) lies more than :data:`MAX_REFINE` px from
    the peak, the tile's transient is another source and the score is 0. The catalogue
    keeps the S_corr peak as ``x, y``: on held-out pairs it is within 1 px more often than
    the CNN's position (see docs/results.md).
    """
    out = candidates.copy()
    if len(out) == 0:
        return out.assign(score=np.zeros(0), x_cnn=np.zeros(0), y_cnn=np.zeros(0))
    planes = _planes(prepared)
    cx = np.rint(out["x"].to_numpy()).astype(int)
    cy = np.rint(out["y"].to_numpy()).astype(int)
    score, offset = scorer.predict(cut_tiles(planes, cx, cy))
    out["x_cnn"], out["y_cnn"] = cx + offset[:, 0], cy + offset[:, 1]
    far = np.hypot(out["x_cnn"] - out["x"], out["y_cnn"] - out["y"]) > MAX_REFINE
    out["score"] = np.where(far, 0.0, score)
    return out


def _planes(prepared: PreparedPair) -> np.ndarray:
    sub = prepared.subtraction
    return triplet_planes(prepared.sci, prepared.ref, sub.diff, prepared.noise_sci,
                          sub.flux_ratio, sub.diff_noise)


def grid_detect(prepared: PreparedPair, scorer: TransientScorer | None = None,
                threshold: float = GRID_SCORE_THRESHOLD) -> pd.DataFrame:
    """The study's layout alone: the CNN on a grid of 64x64 tiles overlapping by 10 px, one
    transient per tile at most; no candidates from the difference. ``scorer`` None: the
    shipped grid model (trained on that layout, ``--layout grid``).

    Returns
    -------
    pandas.DataFrame
        ``x, y, score`` of tiles scoring at or above ``threshold`` whose predicted position
        lies inside the tile, duplicates from overlapping tiles merged.
    """
    scorer = scorer if scorer is not None else TransientScorer.load(layout="grid")
    planes = _planes(prepared)
    ny, nx = prepared.sci.shape
    starts_y, starts_x = tile_starts(ny, TILE, OVERLAP), tile_starts(nx, TILE, OVERLAP)
    gy, gx = np.meshgrid(starts_y, starts_x, indexing="ij")
    cx, cy = gx.ravel() + TILE // 2, gy.ravel() + TILE // 2
    score, offset = scorer.predict(cut_tiles(planes, cx, cy))
    x, y = cx + offset[:, 0], cy + offset[:, 1]
    keep = (score >= threshold) & (np.abs(offset) < TILE // 2).all(axis=1)
    found = pd.DataFrame({"x": x[keep], "y": y[keep], "score": score[keep]})
    return merge_duplicates(found, radius=3.0)


def merge_duplicates(table: pd.DataFrame, radius: float = MERGE_RADIUS) -> pd.DataFrame:
    """Keep the highest-scoring row of every group of rows closer than ``radius`` px."""
    from scipy.spatial import cKDTree

    if len(table) < 2:
        return table.reset_index(drop=True)
    ordered = table.sort_values("score", ascending=False, ignore_index=True)
    tree = cKDTree(ordered[["x", "y"]].to_numpy())
    dropped = np.zeros(len(ordered), bool)
    for i in range(len(ordered)):
        if dropped[i]:
            continue
        for j in tree.query_ball_point(ordered.loc[i, ["x", "y"]].to_numpy(), radius):
            if j > i:
                dropped[j] = True
    return ordered[~dropped].reset_index(drop=True)


def search_mask(prepared: PreparedPair, grow: int = MASK_GROW) -> np.ndarray:
    """Where candidates are not looked for: the masked pixels, and ``grow`` px around the
    saturated ones (the edges of saturated areas ring in S_corr; the edge of the
    reference's footprint does not, and transients there stay findable)."""
    import cv2

    size = 2 * grow + 1
    grown = cv2.dilate(prepared.saturated.astype(np.uint8), np.ones((size, size), np.uint8))
    return prepared.mask | grown.astype(bool)


def candidate_sharpness(prepared: PreparedPair, candidates: pd.DataFrame) -> np.ndarray:
    """:func:`~skytriage.transients.photometry.sharpness` where the flux is, on native
    pixels: in the difference (against its PSF) for positive candidates, in the reference
    on its own grid for negative ones.

    In the difference a host galaxy's light is gone (in the science image it made real
    transients on galaxies look sharp); the resampled reference smooths its cosmic rays
    and hot pixels into PSF-like spots, its own grid does not (measured on simulated
    pairs: real fading sources 0.98 ± 0.11, cosmic rays of the reference 2.1 ± 0.6 there,
    1.5 ± 0.35 in the difference).
    """
    x, y = candidates["x"].to_numpy(float), candidates["y"].to_numpy(float)
    out = np.full(len(candidates), np.nan)
    positive = candidates["snr"].to_numpy() > 0
    sub = prepared.subtraction
    if positive.any():
        out[positive] = sharpness(sub.diff, x[positive], y[positive], sub.psf, sub.diff_noise)
    if (~positive).any():
        matrix = prepared.alignment.matrix
        xy = np.stack([x[~positive], y[~positive], np.ones((~positive).sum())])
        x_ref, y_ref = matrix @ xy
        out[~positive] = sharpness(prepared.ref_native, x_ref, y_ref, prepared.psf_ref,
                                   prepared.noise_ref)
    return out


def measure(prepared: PreparedPair, table: pd.DataFrame) -> pd.DataFrame:
    """Add photometry, magnitudes and kind to rows with ``x, y``."""
    out = table.copy()
    x, y = out["x"].to_numpy(float), out["y"].to_numpy(float)
    sub = prepared.subtraction
    out["flux"], out["flux_err"] = aperture_flux(sub.diff, x, y, sub.psf, sub.diff_noise)
    out["flux_psf"], _ = psf_fit_flux(sub.diff, x, y, sub.psf, sub.diff_noise, "constant")
    out["flux_sci"], _ = psf_fit_flux(prepared.sci, x, y, prepared.psf_sci, prepared.noise_sci)
    ref_flux, ref_err = psf_fit_flux(prepared.ref, x, y, prepared.psf_ref, prepared.noise_ref)
    out["flux_ref"] = ref_flux * sub.flux_ratio
    ref_err = ref_err * sub.flux_ratio
    out["kind"] = classify(out["flux"].to_numpy(), out["flux_ref"].to_numpy(), ref_err)
    mags = magnitudes(out["flux"].to_numpy(), out["flux_ref"].to_numpy(),
                      out["flux_sci"].to_numpy(), ref_err, prepared.zero_point)
    out["mag_diff"], out["delta_mag"] = mags["mag_diff"].to_numpy(), mags["delta_mag"].to_numpy()
    return out


def analyse(prepared: PreparedPair, *, scorer: TransientScorer | None,
            threshold: float = DETECTION_THRESHOLD,
            score_threshold: float = SCORE_THRESHOLD) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Candidates, CNN scores (when ``scorer``), photometry; returns (claimed, all).

    Claims get the full photometry (PSF fits, magnitudes, kind); the candidate table only
    the position, S/N, score and aperture flux.
    """
    candidates = find_candidates(prepared.subtraction.score, search_mask(prepared), threshold)
    candidates["sharpness"] = candidate_sharpness(prepared, candidates)
    ring = search_mask(prepared, MASK_GROW + EDGE_PEAK)[
        np.rint(candidates["y"].to_numpy()).astype(int),
        np.rint(candidates["x"].to_numpy()).astype(int)]
    if scorer is not None:
        candidates = score_candidates(prepared, candidates, scorer)
    else:
        candidates = candidates.assign(score=np.nan)
    sharp = candidates["sharpness"].to_numpy()
    claimed = (sharp > 0) & (sharp <= MAX_SHARPNESS) & ~ring
    if scorer is not None:
        claimed &= (candidates["score"] >= score_threshold).to_numpy()
    candidates["claimed"] = claimed
    transients = candidates[claimed]
    if scorer is not None:
        transients = merge_duplicates(transients)
    transients = measure(prepared, transients)
    sub = prepared.subtraction
    candidates["flux"], candidates["flux_err"] = aperture_flux(
        sub.diff, candidates["x"].to_numpy(float), candidates["y"].to_numpy(float), sub.psf,
        sub.diff_noise)
    columns = [c for c in CATALOGUE_COLUMNS if c in transients.columns]
    kept = [c for c in columns if c in candidates.columns]
    return transients[columns].reset_index(drop=True), candidates[[*kept, "claimed"]]


def run(ref, sci, *, model: str | os.PathLike | TransientScorer | None = None,
        use_cnn: bool = True, method: str = "zogy", threshold: float = DETECTION_THRESHOLD,
        score_threshold: float = SCORE_THRESHOLD, catalogue: pd.DataFrame | None = None,
        ref_header=None, sci_header=None, gains: tuple[float, float] = (1.0, 1.0)
        ) -> TransientResult:
    """Find new, brightening and fading sources in a science image against a reference.

    Parameters
    ----------
    ref, sci : path-like or numpy.ndarray
        FITS files, or images in ADU (then give ``ref_header``/``sci_header`` and ``gains``).
    model : path, TransientScorer or None
        The CNN; None uses the shipped model.
    use_cnn : bool
        False: difference and extraction alone (every candidate is claimed).
    method : {"zogy", "gaussian"}
        Subtraction method.
    threshold : float
        Candidate threshold on |S_corr| (sigma).
    score_threshold : float
        CNN score from which a candidate is claimed.
    catalogue : pandas.DataFrame, optional
        ``x, y, mag`` of stars for the zero point when the headers have none.

    Returns
    -------
    TransientResult
    """
    t0 = time.perf_counter()
    if isinstance(sci, np.ndarray):
        from astropy.io import fits

        prepared = prepare_images(ref, sci, ref_header or fits.Header(),
                                  sci_header or fits.Header(), gains=gains, method=method,
                                  catalogue=catalogue)
    else:
        prepared = prepare_pair(ref, sci, method=method, catalogue=catalogue)
    scorer = None
    if use_cnn:
        scorer = model if isinstance(model, TransientScorer) else TransientScorer.load(model)
    t1 = time.perf_counter()
    transients, candidates = analyse(prepared, scorer=scorer, threshold=threshold,
                                     score_threshold=score_threshold)
    timings = {**prepared.timings, "candidates_cnn_photometry_s": time.perf_counter() - t1,
               "total_s": time.perf_counter() - t0}
    meta = {"zero_point": prepared.zero_point, "zero_point_source": prepared.zero_point_source,
            "photometry": ("flux in science ADU; mag_diff = zero_point - 2.5 log10(|flux|)"
                           if prepared.zero_point is not None else
                           "no zero point: flux only (science ADU), mag_diff is NaN"),
            "method": method, "use_cnn": use_cnn, "detection_threshold": threshold,
            "score_threshold": score_threshold, "alignment": prepared.alignment.method,
            "alignment_stars": prepared.alignment.n_matched,
            "alignment_rms_px": prepared.alignment.rms,
            "flux_ratio": prepared.subtraction.flux_ratio, "timings": timings}
    return TransientResult(transients, candidates, prepared, meta)
