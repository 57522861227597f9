"""Judging cosmic-ray masks the hard way (the CSST evaluation of deepCR, extended).

Every figure is computed against the simulator's truth, with saturated pixels left out:

* pixel precision, recall and F1 over the whole image; beside them the same with the
  pixels whose deposit lies within 1 sigma of the truth's 2-sigma threshold left out
  (:data:`CLEAR_BAND`: noise decides which side of it they fall, so no detector can
  know; ``precision_clear``, ``recall_clear``, ``f1_clear``);
* recall within star regions: pixels where the noiseless sources exceed k × the
  background rms, k in :data:`STAR_LEVELS` (the brighter k, the closer to star cores);
* false star cores: clean, unsaturated, visible stars whose peak pixel is flagged;
* photometry: aperture flux of the cleaned image against the truth's clean image, for
  stars that cosmic rays hit;
* contamination: the share of stars with cosmic-ray pixels in their aperture, before and
  after masking, against the cosmic-ray density;
* detection rate (recall) at fixed false-positive rates, for methods that give a score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.table import Table
from photutils.aperture import CircularAperture, aperture_photometry

from skytriage.crmask.detect import BIT_COSMIC_RAY, BIT_SATURATED, median_inpaint
from skytriage.errors import SkytriageInputError

STAR_LEVELS = (3, 5, 10, 20, 40, 80, 160)
FPR_POINTS = (1e-4, 5e-3)
VISIBLE_PEAK = 5.0
"""A star counts for false cores and contamination when its peak exceeds this many rms."""
CLEAR_BAND = (1.0, 3.0)
"""Deposits (in sigma of the pixel's own noise) between these count neither way in the
``*_clear`` pixel scores: a clean pixel has at most the first, a cosmic-ray pixel more
than the second (benchmarks/crmask_truth_ceiling.py measures why)."""


@dataclass
class Truth:
    """A simulated exposure and its truth (see ``skytriage simulate crmask``).

    Arrays are float32 ``(ny, nx)``: ``image`` and ``clean`` in ADU, ``sources`` the
    noiseless sources in e-; ``mask`` uint16 truth flags.
    """

    path: str
    image: np.ndarray
    clean: np.ndarray
    sources: np.ndarray
    mask: np.ndarray
    stars: Table
    gain: float
    readnoise: float
    saturation: float
    sky_adu: float
    sky_rms: float
    fwhm: float
    density: float

    @property
    def cosmic(self) -> np.ndarray:
        """Truth cosmic-ray pixels."""
        return (self.mask & BIT_COSMIC_RAY) > 0

    @property
    def valid(self) -> np.ndarray:
        """Pixels that count (not saturated)."""
        return (self.mask & BIT_SATURATED) == 0

    @cached_property
    def deposit_sigma(self) -> np.ndarray:
        """Cosmic-ray deposit over each pixel's own noise (read noise, sky and source
        Poisson noise), float32 ``(ny, nx)``: what the truth mask thresholds at 2
        (computed once per exposure, shared by every method scored on it)."""
        noise_e = np.sqrt(self.readnoise**2 + self.sources + self.sky_adu * self.gain)
        return (self.image - self.clean) * np.float32(self.gain) / noise_e


def load_truth(image_path: str | os.PathLike) -> Truth:
    """Read an exposure written by ``skytriage simulate crmask`` with its truth files."""
    image_path = Path(image_path)
    stem, truth = image_path.name.split(".")[0], image_path.parent / "truth"
    try:
        with fits.open(image_path) as hdul:
            header, image = hdul[0].header, hdul[0].data.astype(np.float32)
        mask = fits.getdata(truth / f"{stem}_mask.fits").astype(np.uint16)
        clean = fits.getdata(truth / f"{stem}_clean.fits").astype(np.float32)
        sources = fits.getdata(truth / f"{stem}_sources.fits").astype(np.float32)
        stars = Table.read(truth / f"{stem}_stars.ecsv")
    except FileNotFoundError as err:
        raise SkytriageInputError(image_path, f"truth file missing: {err.filename}") from None
    bias = float(header.get("BIASLVL", 0.0))
    return Truth(str(image_path), image - bias, clean, sources, mask, stars,
                 float(header["GAIN"]), float(header["RDNOISE"]),
                 float(header["SATURATE"]) - bias, float(header["SKYLEVEL"]),
                 float(stars.meta["sky_rms_adu"]), float(header["FWHM"]),
                 float(header["CRDENS"]))


def pixel_scores(pred: np.ndarray, truth: Truth) -> dict:
    """True/false positives, false negatives, precision, recall and F1 over valid pixels."""
    valid, cosmic = truth.valid, truth.cosmic
    tp = int(np.count_nonzero(pred & cosmic & valid))
    fp = int(np.count_nonzero(pred & ~cosmic & valid))
    fn = int(np.count_nonzero(~pred & cosmic & valid))
    negatives = int(np.count_nonzero(valid & ~cosmic))
    return {"tp": tp, "fp": fp, "fn": fn, "negatives": negatives,
            "fpr": fp / max(negatives, 1), **_prf(tp, fp, fn), **_clear_counts(pred, truth)}


def _clear_counts(pred: np.ndarray, truth: Truth) -> dict:
    """tp/fp/fn with the deposits inside :data:`CLEAR_BAND` left out (``clear_*``)."""
    deposit, valid = truth.deposit_sigma, truth.valid
    positive = (deposit > CLEAR_BAND[1]) & valid
    negative = (deposit <= CLEAR_BAND[0]) & valid
    return {"clear_tp": int(np.count_nonzero(pred & positive)),
            "clear_fp": int(np.count_nonzero(pred & negative)),
            "clear_fn": int(np.count_nonzero(~pred & positive))}


def _prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1}


def star_region_counts(pred: np.ndarray, truth: Truth) -> dict:
    """Truth cosmic-ray pixels and detected ones inside each star region level."""
    level = truth.sources / np.float32(truth.gain * truth.sky_rms)
    cosmic = truth.cosmic & truth.valid
    out = {}
    for k in STAR_LEVELS:
        inside = cosmic & (level > k)
        out[f"cr_in_{k}"] = int(np.count_nonzero(inside))
        out[f"hit_in_{k}"] = int(np.count_nonzero(inside & pred))
    return out


def _star_pixels(truth: Truth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak pixel indices of stars inside the image, and whether each is visible."""
    ny, nx = truth.image.shape
    ix = np.floor(np.asarray(truth.stars["x"]) + 0.5).astype(int)
    iy = np.floor(np.asarray(truth.stars["y"]) + 0.5).astype(int)
    inside = (ix >= 2) & (ix < nx - 2) & (iy >= 2) & (iy < ny - 2)
    ix, iy = ix[inside], iy[inside]
    peak = np.asarray(truth.stars["peak"])[inside] / truth.gain
    return ix, iy, peak > VISIBLE_PEAK * truth.sky_rms


def false_cores(pred: np.ndarray, truth: Truth) -> dict:
    """Clean stars (no truth cosmic-ray or saturated pixel within 2 px of the peak) whose
    peak pixel is flagged, among visible clean stars."""
    ix, iy, visible = _star_pixels(truth)
    near_cr = np.zeros(ix.size, bool)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near_cr |= truth.cosmic[iy + dy, ix + dx] | ~truth.valid[iy + dy, ix + dx]
    clean = visible & ~near_cr
    return {"clean_stars": int(clean.sum()), "false_cores": int(np.sum(pred[iy, ix] & clean))}


def _aperture_radius(truth: Truth) -> float:
    return max(3.0, 1.5 * truth.fwhm)


def contamination(pred: np.ndarray, truth: Truth) -> dict:
    """Visible stars with truth cosmic-ray pixels in their aperture, before and after masking."""
    ix, iy, visible = _star_pixels(truth)
    radius = _aperture_radius(truth)
    hit = _pixels_in_apertures(truth.cosmic, ix[visible], iy[visible], radius)
    missed = _pixels_in_apertures(truth.cosmic & ~pred, ix[visible], iy[visible], radius)
    n = int(visible.sum())
    return {"stars": n, "stars_hit": int(np.sum(hit > 0)),
            "stars_still_hit": int(np.sum(missed > 0))}


def _pixels_in_apertures(flags: np.ndarray, ix, iy, radius: float) -> np.ndarray:
    if len(ix) == 0:
        return np.zeros(0)
    apertures = CircularAperture(np.column_stack([ix, iy]).astype(float), r=radius)
    return np.asarray(aperture_photometry(flags.astype(np.float32), apertures,
                                          method="center")["aperture_sum"])


def photometry(clean: np.ndarray, truth: Truth) -> pd.DataFrame:
    """Aperture fluxes (ADU, sky removed) of visible, unsaturated stars hit by cosmic rays.

    Columns ``flux_true`` (truth clean image), ``flux_clean`` (``clean``), ``flux_raw``
    (the image with its cosmic rays), ``error`` = ``(flux_clean - flux_true) / flux_true``.
    """
    ix, iy, visible = _star_pixels(truth)
    radius = _aperture_radius(truth)
    hit = _pixels_in_apertures(truth.cosmic, ix, iy, radius) > 0
    saturated = _pixels_in_apertures(~truth.valid, ix, iy, radius) > 0
    keep = visible & hit & ~saturated
    if not keep.any():
        return pd.DataFrame(columns=["flux_true", "flux_clean", "flux_raw", "error"])
    apertures = CircularAperture(np.column_stack([ix[keep], iy[keep]]).astype(float), r=radius)
    sky = truth.sky_adu * apertures.area

    def flux(data: np.ndarray) -> np.ndarray:
        return np.asarray(aperture_photometry(data, apertures)["aperture_sum"]) - sky

    table = pd.DataFrame({"flux_true": flux(truth.clean), "flux_clean": flux(clean),
                          "flux_raw": flux(truth.image)})
    table["error"] = (table["flux_clean"] - table["flux_true"]) / table["flux_true"]
    return table


def rate_at_fpr(score: np.ndarray, truth: Truth, fprs=FPR_POINTS) -> dict:
    """Recall at the score cut that flags the given fractions of non-cosmic-ray pixels."""
    valid = truth.valid
    negatives = np.sort(score[valid & ~truth.cosmic])[::-1]
    positives = score[valid & truth.cosmic]
    out = {}
    for fpr in fprs:
        k = int(fpr * negatives.size)
        cut = negatives[min(k, negatives.size - 1)]
        out[f"recall_at_fpr_{fpr:g}"] = float(np.mean(positives > cut)) if positives.size \
            else float("nan")
    return out


def evaluate_mask(name: str, pred: np.ndarray, score: np.ndarray | None, truth: Truth,
                  clean: np.ndarray | None = None) -> tuple[dict, pd.DataFrame]:
    """All per-image figures for one method's mask (and score and cleaned image).

    Without ``clean``, the photometry uses the masked-median fill of ``pred``.

    Returns
    -------
    (dict, pandas.DataFrame)
        One row of counts and scores; the photometry table of hit stars.
    """
    pred = np.asarray(pred, bool)
    row = {"method": name, "image": Path(truth.path).name, "density": truth.density,
           "fwhm": truth.fwhm, **pixel_scores(pred, truth), **star_region_counts(pred, truth),
           **false_cores(pred, truth), **contamination(pred, truth)}
    if score is not None:
        row.update(rate_at_fpr(score, truth))
    if clean is None:
        clean = median_inpaint(truth.image, pred | ~truth.valid)
    phot = photometry(clean, truth)
    phot.insert(0, "method", name)
    phot.insert(1, "image", row["image"])
    return row, phot


def pooled(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per method: pixel scores, region recall, false cores, photometry-free sums."""
    out = []
    for method, group in rows.groupby("method", sort=False):
        sums = group.sum(numeric_only=True)
        line = {"method": method, "images": len(group),
                **_prf(int(sums["tp"]), int(sums["fp"]), int(sums["fn"])),
                "fpr": sums["fp"] / max(sums["negatives"], 1)}
        if "clear_tp" in sums:
            clear = _prf(int(sums["clear_tp"]), int(sums["clear_fp"]), int(sums["clear_fn"]))
            line.update({f"{k}_clear": v for k, v in clear.items()})
        for k in STAR_LEVELS:
            n = sums[f"cr_in_{k}"]
            line[f"recall_{k}rms"] = sums[f"hit_in_{k}"] / n if n else float("nan")
        line["false_core_rate"] = (sums["false_cores"] / sums["clean_stars"]
                                   if sums["clean_stars"] else float("nan"))
        line["stars_hit"] = sums["stars_hit"] / sums["stars"] if sums["stars"] else float("nan")
        line["stars_still_hit"] = (sums["stars_still_hit"] / sums["stars"]
                                   if sums["stars"] else float("nan"))
        for fpr in FPR_POINTS:
            column = f"recall_at_fpr_{fpr:g}"
            if column in group and group[column].notna().any():
                line[column] = float(group[column].mean())
        if "seconds" in group:
            line["seconds_per_mpix"] = float(group["seconds"].sum() / group["mpix"].sum())
        out.append(line)
    return pd.DataFrame(out)


@dataclass
class Evaluation:
    """Everything ``crmask evaluate`` measured: per-image rows, photometry, ROC samples and
    one example exposure with every method's mask (for the report)."""

    rows: pd.DataFrame
    photometry: pd.DataFrame
    roc: dict[str, tuple[np.ndarray, np.ndarray]]
    example: tuple[Truth, dict[str, np.ndarray]] | None

    def table(self) -> pd.DataFrame:
        """Pooled figures, one line per method, with median photometric error."""
        table = pooled(self.rows)
        if len(self.photometry):
            med = self.photometry.groupby("method")["error"].apply(lambda e: np.median(np.abs(e)))
            table["median_abs_phot_error"] = table["method"].map(med)
        return table


def _roc_curve(score: np.ndarray, truth: Truth, points: int = 200
               ) -> tuple[np.ndarray, np.ndarray]:
    """False-positive and true-positive rates over score cuts (log-spaced in FPR)."""
    negatives = np.sort(score[truth.valid & ~truth.cosmic])[::-1]
    positives = score[truth.valid & truth.cosmic]
    fpr = np.logspace(-6, 0, points)
    cuts = negatives[np.minimum((fpr * negatives.size).astype(int), negatives.size - 1)]
    tpr = np.array([np.mean(positives > c) for c in cuts]) if positives.size else fpr * np.nan
    return fpr, tpr


def evaluate_images(paths: list[str | os.PathLike], methods: list[str], *,
                    progress: bool = False) -> Evaluation:
    """Run each method on each simulated exposure and measure it against the truth.

    Every mask is filled with the masked median for photometry; ``skytriage-unet`` appears
    a second time in the photometry as ``skytriage-unet+learned-inpaint``, filled by the
    learned inpainter. ``seconds`` is the time to make the mask.
    """
    import time

    from rich.progress import track

    from skytriage.crmask.peers import MASKERS
    from skytriage.crmask.pipeline import run

    maskers = {name: MASKERS[name]() for name in methods}
    rows, phot, roc = [], [], {}
    example = None
    for index, path in enumerate(track(paths, description="evaluating", disable=not progress,
                                       transient=True)):
        truth = load_truth(path)
        masks = {}
        for name, masker in maskers.items():
            options = {"gain": truth.gain, "readnoise": truth.readnoise,
                       "saturation": truth.saturation}
            t0 = time.perf_counter()
            if name == "skytriage-unet":
                result = run(truth.image, method="unet", inpaint="unet", **options)
                learned_clean = result.clean
                mask, score = result.cosmic_rays, result.probability
                seconds = result.info["mask_seconds"]
            else:
                mask, score = masker(truth.image, **options)
                seconds = time.perf_counter() - t0
            row, table = evaluate_mask(name, mask, score, truth)
            row.update(seconds=seconds, mpix=truth.image.size / 1e6)
            rows.append(row)
            phot.append(table)
            if name == "skytriage-unet":
                _, learned = evaluate_mask(name + "+learned-inpaint", mask, None, truth,
                                           learned_clean)
                phot.append(learned)
            if score is not None and index == 0:
                roc[name] = _roc_curve(score, truth)
            masks[name] = mask
        if example is None or truth.density > example[0].density:
            example = (truth, masks)
    return Evaluation(pd.DataFrame(rows), pd.concat(phot, ignore_index=True), roc, example)
