"""Metrics against truth: completeness and purity against S/N and delta-mag, position errors
(within 1/2/5 px, against delta-mag and edge distance, their polar plot), photometric
errors, and robustness of the CNN over the five augmentations.

Three detectors are compared on the same pairs in the same run: the full method (ZOGY
candidates scored by the CNN), difference + extraction alone (every ZOGY candidate; and
the same with the Gaussian-kernel subtraction), and the CNN alone on the study's tile grid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from skytriage.errors import SkytriageInputError
from skytriage.io import write_csv, write_json
from skytriage.io.tables import read_table

#: A claim within this distance (px) of a true transient finds it.
MATCH_RADIUS = 3.0
SNR_BINS = [5, 7, 10, 20, 50, 1e9]
DMAG_BINS = [0.3, 0.75, 1.5, 3.0]
EDGE_BINS = [0, 10, 25, 64, 1e9]
METHODS = ("full", "extraction", "extraction_gaussian", "cnn_grid")


def read_truth(path: str | os.PathLike) -> pd.DataFrame:
    """A truth catalogue (``x, y, kind, snr, delta_flux, mag_diff, delta_mag, ...``)."""
    return read_table(path, {"x", "y", "snr"}, "truth catalogue")


def match(found: pd.DataFrame, truth: pd.DataFrame, radius: float = MATCH_RADIUS
          ) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one nearest matching of claims to true transients.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        For each truth row the index of its claim (-1 if none), and for each claim whether
        it found a true transient.
    """
    claim_of = np.full(len(truth), -1)
    is_true = np.zeros(len(found), bool)
    if len(found) == 0 or len(truth) == 0:
        return claim_of, is_true
    dist, index = cKDTree(found[["x", "y"]].to_numpy(float)).query(
        truth[["x", "y"]].to_numpy(float), k=min(3, len(found)), distance_upper_bound=radius)
    dist, index = np.atleast_2d(dist.T).T, np.atleast_2d(index.T).T
    for t in np.argsort(dist[:, 0]):
        for d, i in zip(dist[t], index[t], strict=True):
            if np.isfinite(d) and not is_true[i]:
                claim_of[t], is_true[i] = i, True
                break
    return claim_of, is_true


def matched_rows(found: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Truth rows with ``found``, ``distance``, ``dx, dy`` (claim - truth, px) and the
    claim's photometry errors."""
    claim_of, _ = match(found, truth)
    rows = truth.copy()
    rows["found"] = claim_of >= 0
    take = found.iloc[np.maximum(claim_of, 0)].reset_index(drop=True) if len(found) else None
    for name in ("dx", "dy", "distance", "distance_cnn", "mag_diff_error", "delta_mag_error",
                 "mag_diff_psf_error", "kind_found"):
        rows[name] = np.nan if name != "kind_found" else ""
    if take is None:
        return rows
    ok = rows["found"].to_numpy()
    rows.loc[ok, "dx"] = (take["x"].to_numpy() - rows["x"].to_numpy())[ok]
    rows.loc[ok, "dy"] = (take["y"].to_numpy() - rows["y"].to_numpy())[ok]
    rows["distance"] = np.hypot(rows["dx"], rows["dy"])
    if "x_cnn" in take:
        cnn = np.hypot(take["x_cnn"].to_numpy() - rows["x"].to_numpy(),
                       take["y_cnn"].to_numpy() - rows["y"].to_numpy())
        rows.loc[ok, "distance_cnn"] = cnn[ok]
    if "mag_diff" in take and "mag_diff" in rows:
        rows.loc[ok, "mag_diff_error"] = (take["mag_diff"].to_numpy()
                                          - rows["mag_diff"].to_numpy())[ok]
    if "flux_psf" in take and "delta_flux" in rows:
        with np.errstate(divide="ignore", invalid="ignore"):
            error = -2.5 * np.log10(np.abs(take["flux_psf"].to_numpy())
                                    / np.abs(rows["delta_flux"].to_numpy()))
        rows.loc[ok, "mag_diff_psf_error"] = error[ok]
    if "delta_mag" in take and "delta_mag" in rows:
        rows.loc[ok, "delta_mag_error"] = (take["delta_mag"].to_numpy()
                                           - rows["delta_mag"].to_numpy())[ok]
    if "kind" in take:
        rows.loc[ok, "kind_found"] = take["kind"].to_numpy()[ok]
    return rows


def evaluate_pair(found: pd.DataFrame, truth: pd.DataFrame, shape: tuple[int, int]) -> dict:
    """Headline numbers of one pair (see :func:`summarise`)."""
    rows = matched_rows(found, truth)
    _, is_true = match(found, truth)
    return summarise(rows, int(len(found)), int(is_true.sum()))


def _fraction(mask: pd.Series) -> float | None:
    return float(mask.mean()) if len(mask) else None


def _seen(rows: pd.DataFrame) -> pd.DataFrame:
    """Truth rows the reference saw (all when the truth has no ``in_reference``)."""
    return rows[rows["in_reference"].astype(bool)] if "in_reference" in rows else rows


def summarise(rows: pd.DataFrame, n_claims: int, n_true_claims: int) -> dict:
    """Completeness (S/N 5-10, >= 10), purity, within 1/2/5 px, photometric errors.

    Completeness counts the transients the reference saw (truth column ``in_reference``,
    when present); ``completeness_snr_ge_10_all`` counts every one, and
    ``outside_reference`` says how many were left out.
    """
    seen = _seen(rows)
    snr = seen["snr"]
    found = rows[rows["found"]]
    high = found[found["snr"] >= 10]
    out = {"transients": int(len(rows)), "outside_reference": int(len(rows) - len(seen)),
           "claims": n_claims,
           "completeness_snr_5_10": _fraction(seen.loc[(snr >= 5) & (snr < 10), "found"]),
           "completeness_snr_ge_10": _fraction(seen.loc[snr >= 10, "found"]),
           "completeness_snr_ge_10_all": _fraction(rows.loc[rows["snr"] >= 10, "found"]),
           "purity": n_true_claims / n_claims if n_claims else None}
    for r in (1, 2, 5):
        out[f"within_{r}px"] = _fraction(found["distance"] < r)
    out["median_distance_px"] = float(found["distance"].median()) if len(found) else None
    if found["distance_cnn"].notna().any():
        out["within_1px_cnn_position"] = _fraction(found["distance_cnn"] < 1)
    for name in ("mag_diff_error", "mag_diff_psf_error", "delta_mag_error"):
        values = high[name].dropna().abs()
        out[f"median_abs_{name}_snr_ge_10"] = float(values.median()) if len(values) else None
    if "kind" in rows and len(found):
        out["kind_accuracy"] = float((found["kind"] == found["kind_found"]).mean())
    return out


def _binned(rows: pd.DataFrame, column: str, bins: Sequence[float], value: str,
            how: str) -> pd.DataFrame:
    """``value`` aggregated (``how``: mean or median) in bins of ``column``."""
    cut = pd.cut(rows[column], bins, right=False)
    grouped = rows.groupby(cut, observed=False)[value]
    table = pd.DataFrame({"n": grouped.size(), how: grouped.agg(how)})
    table.index = [str(i) for i in table.index]
    return table.reset_index(names=column)


@dataclass
class TransientEvaluation:
    """Per-truth rows of every method, claim counts, and the robustness table."""

    rows: pd.DataFrame  # truth rows + method, pair, found, distance, errors
    claims: pd.DataFrame  # method, pair, claims, true_claims
    robustness: pd.DataFrame  # per matched source: median and spread over augmentations

    @property
    def summary(self) -> dict:
        """Headline numbers per method, and the pairs evaluated."""
        out = {"pairs": int(self.claims["pair"].nunique())}
        for method in self.claims["method"].unique():
            rows = self.rows[self.rows["method"] == method]
            counts = self.claims[self.claims["method"] == method]
            out[method] = summarise(rows, int(counts["claims"].sum()),
                                    int(counts["true_claims"].sum()))
        if len(self.robustness):
            out["augmentation_spread_px_median"] = float(self.robustness["spread_px"].median())
            out["augmentation_score_spread_median"] = float(
                self.robustness["score_spread"].median())
        return out

    def tables(self) -> dict[str, pd.DataFrame]:
        """Completeness against S/N and delta-mag (transients the reference saw), distance
        against delta-mag and edge."""
        seen = _seen(self.rows)
        full = self.rows[self.rows["method"] == "full"]
        found = full[full["found"]]
        variables = _seen(full)[_seen(full)["kind"] != "new"]
        return {
            "completeness_vs_snr": pd.concat(
                [_binned(seen[seen["method"] == m], "snr", SNR_BINS, "found",
                         "mean").assign(method=m) for m in seen["method"].unique()]),
            "completeness_vs_delta_mag": _binned(variables, "delta_mag", DMAG_BINS, "found",
                                                 "mean"),
            "distance_vs_delta_mag": _binned(found[found["kind"] != "new"], "delta_mag",
                                             DMAG_BINS, "distance", "median"),
            "distance_vs_edge": _binned(found, "edge_distance", EDGE_BINS, "distance",
                                        "median"),
            "completeness_vs_edge": _binned(_seen(full), "edge_distance", EDGE_BINS, "found",
                                            "mean"),
        }

    def markdown(self) -> str:
        """The headline table as Markdown."""
        summary = self.summary
        keys = ["completeness_snr_5_10", "completeness_snr_ge_10",
                "completeness_snr_ge_10_all", "purity", "within_1px",
                "within_1px_cnn_position", "within_2px", "within_5px",
                "median_abs_mag_diff_error_snr_ge_10", "median_abs_mag_diff_psf_error_snr_ge_10",
                "median_abs_delta_mag_error_snr_ge_10"]
        methods = [m for m in METHODS if m in summary]
        lines = ["| metric | " + " | ".join(methods) + " |",
                 "|---|" + "---|" * len(methods)]
        for key in keys:
            cells = [summary[m].get(key) for m in methods]
            lines.append(f"| {key} | " + " | ".join("—" if c is None else f"{c:.3f}"
                                                     for c in cells) + " |")
        return "\n".join(lines)

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """``evaluation.json``, ``matches.csv``, ``robustness.csv``, ``evaluation.html``."""
        from skytriage.transients.report import evaluation_report

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tables = {k: v.to_dict(orient="records") for k, v in self.tables().items()}
        return [write_json(out / "evaluation.json", {"summary": self.summary,
                                                     "tables": tables}),
                write_csv(out / "matches.csv", self.rows),
                write_csv(out / "robustness.csv", self.robustness),
                evaluation_report(self, out / "evaluation.html")]


def augmentation_robustness(prepared, found: pd.DataFrame, scorer) -> pd.DataFrame:
    """Positions and scores of claims under the identity and the five augmentations.

    Returns
    -------
    pandas.DataFrame
        Per claim: ``x, y`` (median over the six views), ``spread_px`` (rms distance of
        the six positions from their median), ``score_median``, ``score_spread`` (std).
    """
    from skytriage.transients.model import cut_tiles
    from skytriage.transients.pipeline import _planes

    if len(found) == 0:
        return pd.DataFrame(columns=["x", "y", "spread_px", "score_median", "score_spread"])
    cx = np.rint(found["x"].to_numpy()).astype(int)
    cy = np.rint(found["y"].to_numpy()).astype(int)
    tiles = cut_tiles(_planes(prepared), cx, cy)
    views = [scorer.predict(tiles, augmentation=k) for k in range(6)]
    xs = np.stack([cx + v[1][:, 0] for v in views], 1)
    ys = np.stack([cy + v[1][:, 1] for v in views], 1)
    scores = np.stack([v[0] for v in views], 1)
    mx, my = np.median(xs, 1), np.median(ys, 1)
    spread = np.sqrt(np.mean((xs - mx[:, None]) ** 2 + (ys - my[:, None]) ** 2, 1))
    return pd.DataFrame({"x": mx, "y": my, "spread_px": spread,
                         "score_median": np.median(scores, 1), "score_spread": scores.std(1)})


def evaluate_pair_all(ref: str, sci: str, truth: pd.DataFrame, scorer, pair: str,
                      grid_scorer) -> tuple[list[pd.DataFrame], list[dict], pd.DataFrame]:
    """Every method on one pair: per-truth rows, claim counts, robustness rows."""
    from skytriage.transients.detect import prepare_pair
    from skytriage.transients.pipeline import analyse, grid_detect

    prepared = prepare_pair(ref, sci)
    results = {"full": analyse(prepared, scorer=scorer)[0],
               "extraction": analyse(prepared, scorer=None)[0],
               "cnn_grid": grid_detect(prepared, grid_scorer)}
    results["extraction_gaussian"] = analyse(prepare_pair(ref, sci, method="gaussian"),
                                             scorer=None)[0]
    rows, claims = [], []
    for method, found in results.items():
        _, is_true = match(found, truth)
        rows.append(matched_rows(found, truth).assign(method=method, pair=pair))
        claims.append({"method": method, "pair": pair, "claims": len(found),
                       "true_claims": int(is_true.sum())})
    robust = augmentation_robustness(prepared, results["full"], scorer).assign(pair=pair)
    return rows, claims, robust


def evaluate_folders(folders: Sequence[str | os.PathLike], *, model=None, grid_model=None,
                     failed: Callable[[str, BaseException], None] | None = None
                     ) -> TransientEvaluation | None:
    """Evaluate every method on simulated pair folders (``ref.fits, sci.fits, truth.ecsv``).

    ``model`` and ``grid_model`` (paths, scorers or None for the shipped ones) are the
    candidate scorer and the grid baseline. A folder that cannot be used is reported
    through ``failed(path, error)`` and skipped; None when none could be used.
    """
    from skytriage.transients.model import TransientScorer

    scorer = model if isinstance(model, TransientScorer) else TransientScorer.load(model)
    grid_scorer = (grid_model if isinstance(grid_model, TransientScorer)
                   else TransientScorer.load(grid_model, layout="grid"))
    rows, claims, robust = [], [], []
    for folder in map(Path, folders):
        try:
            truth = read_truth(folder / "truth.ecsv")
            r, c, b = evaluate_pair_all(str(folder / "ref.fits"), str(folder / "sci.fits"),
                                        truth, scorer, folder.name, grid_scorer)
        except SkytriageInputError as err:
            if failed is None:
                raise
            failed(str(folder), err)
            continue
        rows += r
        claims += c
        robust.append(b)
    if not claims:
        return None
    return TransientEvaluation(pd.concat(rows, ignore_index=True), pd.DataFrame(claims),
                               pd.concat(robust, ignore_index=True))
