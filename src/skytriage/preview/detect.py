"""Classical, explainable outlier detection for preview: no training needed.

Three detectors, each run per dataset (one field, one night: frames compared with their
neighbours) and over all datasets at once:

- **robust z**: for every outlier feature, ``(x − dataset median) / (1.4826 MAD)``; the
  frame's score is the largest ``|z|``;
- **DBSCAN** on robust-standardised features, ``eps`` from the knee of the sorted
  k-distance curve, ``min_samples = k``; frames in no cluster are outliers (the JPL
  study's method);
- **Isolation Forest** (scikit-learn, ``contamination="auto"``).

They say *that* a frame is odd, not *why*; the classifier of :mod:`skytriage.preview.model`
says why. Both are reported side by side by :mod:`skytriage.preview.evaluate`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors

LABELS = ("normal", "satellite", "slew", "tracking", "cloud", "obstruction", "defocus",
          "background", "camera")
ANOMALY_CLASSES = LABELS[1:]

# The features the outlier detectors look at: the dataset-relative versions of what the
# JPL study found to separate anomalies (Var Sobel, Percent Mid/High, Var Laplace) plus
# blobs, streaks, background shape and pattern noise.
OUTLIER_FEATURES = (
    "rel_median", "rel_sigma", "rel_pct_mid", "rel_pct_high", "rel_lap_var", "rel_lap_max",
    "rel_sobel_var", "rel_n_blobs", "rel_fwhm", "rel_ellipticity", "rel_blob_elong",
    "rel_bkg_structure", "rel_edge_dark", "rel_line_snr", "rel_row_peak", "rel_col_peak",
)
ROBUST_Z_THRESHOLD = 8.0
_MIN_SPREAD = 0.05
_K = 4


def robust_standardise(values: pd.DataFrame) -> pd.DataFrame:
    """``(x − median) / max(1.4826 MAD, 0.05)`` per column (relative features are ~0..1)."""
    median = values.median()
    spread = np.maximum(1.4826 * (values - median).abs().median(), _MIN_SPREAD)
    return (values - median) / spread


def robust_z_score(features: pd.DataFrame) -> pd.Series:
    """Largest absolute robust z over :data:`OUTLIER_FEATURES`, per frame."""
    columns = [c for c in OUTLIER_FEATURES if c in features]
    if len(features) < 3 or not columns:
        return pd.Series(0.0, index=features.index)
    return robust_standardise(features[columns].astype(np.float64)).abs().max(axis=1)


def knee_eps(points: np.ndarray, k: int = _K) -> float:
    """DBSCAN ``eps`` from the knee of the sorted distances to the k-th neighbour.

    The knee is the point of the ascending k-distance curve farthest from the straight
    line joining its ends (the "kneedle" rule).
    """
    k = min(k, len(points) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    curve = np.sort(distances[:, -1])
    x = np.linspace(0.0, 1.0, curve.size)
    span = curve[-1] - curve[0]
    if span <= 0:
        return float(curve[-1] or 1.0)
    y = (curve - curve[0]) / span
    return float(curve[int(np.argmax(x - y))] or curve[-1])


def dbscan_outliers(features: pd.DataFrame, k: int = _K) -> pd.Series:
    """True for frames that DBSCAN leaves in no cluster (fewer than ``2k`` frames: none)."""
    columns = [c for c in OUTLIER_FEATURES if c in features]
    if len(features) < 2 * k or not columns:
        return pd.Series(False, index=features.index)
    points = np.clip(robust_standardise(features[columns].astype(np.float64)).to_numpy(),
                     -50, 50)
    eps = knee_eps(points, k)
    labels = DBSCAN(eps=eps, min_samples=k).fit_predict(points)
    return pd.Series(labels == -1, index=features.index)


def isolation_forest_scores(features: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Isolation Forest anomaly score (higher = stranger, ~0.5 typical) and outlier flag."""
    columns = [c for c in OUTLIER_FEATURES if c in features]
    if len(features) < 8 or not columns:
        return pd.DataFrame({"score": 0.0, "outlier": False}, index=features.index)
    points = np.clip(robust_standardise(features[columns].astype(np.float64)).to_numpy(),
                     -50, 50)
    forest = IsolationForest(n_estimators=200, contamination="auto", random_state=seed)
    forest.fit(points)
    return pd.DataFrame({"score": -forest.score_samples(points),
                         "outlier": forest.predict(points) == -1}, index=features.index)


def outlier_columns(table: pd.DataFrame) -> pd.DataFrame:
    """All outlier evidence for a feature table with a ``dataset`` column.

    Returns
    -------
    DataFrame
        ``robust_z``, ``dbscan_outlier``, ``iforest_score``, ``iforest_outlier`` (within
        each dataset) and ``dbscan_outlier_all``, ``iforest_outlier_all`` (all datasets
        pooled), indexed like ``table``.
    """
    parts = []
    for _, group in table.groupby("dataset", sort=False):
        forest = isolation_forest_scores(group)
        parts.append(pd.DataFrame({"robust_z": robust_z_score(group),
                                   "dbscan_outlier": dbscan_outliers(group),
                                   "iforest_score": forest["score"],
                                   "iforest_outlier": forest["outlier"]}))
    columns = pd.concat(parts).reindex(table.index)
    columns["dbscan_outlier_all"] = dbscan_outliers(table)
    columns["iforest_outlier_all"] = isolation_forest_scores(table)["outlier"]
    return columns
