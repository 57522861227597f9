"""Classical, explainable anomaly scoring for preview: robust z-scores within a dataset.

Each frame is compared with the other frames of its dataset (one field, one night):
for every feature, ``z = (value - dataset median) / (1.4826 MAD)``. The anomaly score is
the largest ``|z|`` over the scored features; a frame is anomalous above a threshold.
The label is the class whose signature features deviate most. This is the baseline the
preview issue (#3) builds on with DBSCAN, Isolation Forest and a trained classifier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LABELS = ("normal", "satellite", "slew", "tracking", "cloud", "obstruction", "defocus",
          "background", "camera")

# feature -> (sign of the deviation that counts, smallest spread in the feature's units,
# smallest spread relative to the dataset median). The floors keep a feature that is
# nearly constant over a dataset (edge_dark is 0 in every clear frame) from turning
# every wobble into a huge z.
SCORED_FEATURES = {
    "median": (+1, 0.0, 0.05), "sigma": (+1, 0.0, 0.05), "entropy": (+1, 0.05, 0.0),
    "pct_low": (+1, 0.2, 0.05), "pct_mid": (+1, 0.2, 0.05), "pct_high": (+1, 0.05, 0.05),
    "lap_var": (-1, 0.0, 0.05), "sobel_var": (+1, 0.0, 0.05), "sobel_max": (+1, 0.0, 0.05),
    "bkg_gradient": (+1, 0.5, 0.05), "bkg_structure": (+1, 0.1, 0.05),
    "edge_dark": (+1, 2.0, 0.0), "row_noise": (+1, 0.05, 0.05), "row_peak": (+1, 0.5, 0.05),
    "col_noise": (+1, 0.05, 0.05), "col_peak": (+1, 0.5, 0.05),
}

# class -> its key features, most specific class first: the label is the first class whose
# key feature passes the threshold (an obstruction also makes the background look
# structured, not the other way round), else the class whose key feature deviates most.
# slew and tracking need the blob and streak features of issue 3.
SIGNATURES = {
    "obstruction": ("edge_dark",),
    "camera": ("row_peak", "col_peak", "row_noise", "col_noise"),
    "background": ("median",),
    "defocus": ("lap_var",),
    "cloud": ("bkg_structure",),
    "satellite": ("pct_mid",),
}

DEFAULT_THRESHOLD = 8.0


def robust_z(features: pd.DataFrame) -> pd.DataFrame:
    """Signed robust z-score of every scored feature within one dataset.

    Parameters
    ----------
    features : DataFrame
        One row per frame of a single dataset, one column per feature.

    Returns
    -------
    DataFrame
        Same index, one column per scored feature: ``sign * (x - median) / spread`` where
        spread is 1.4826 × MAD, floored as :data:`SCORED_FEATURES` says.
    """
    columns = [c for c in SCORED_FEATURES if c in features]
    values = features[columns].astype(np.float64)
    median = values.median()
    sign, floor_abs, floor_rel = (pd.Series({c: SCORED_FEATURES[c][k] for c in columns})
                                  for k in range(3))
    spread = 1.4826 * (values - median).abs().median()
    spread = np.maximum(spread, np.maximum(floor_abs, floor_rel * median.abs()))
    return (values - median) / spread * sign


def score_dataset(features: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Anomaly score, flag and label of every frame of one dataset.

    Returns
    -------
    DataFrame
        Columns ``anomaly_score`` (largest signed robust z), ``is_anomaly``
        (score > ``threshold``), ``label`` (most likely class, see :data:`SIGNATURES`),
        ``labels`` (every class whose key z exceeds the threshold, ``;``-separated).
    """
    z = robust_z(features)
    score = z.max(axis=1).clip(lower=0.0)
    evidence = pd.DataFrame({cls: z[[f for f in feats if f in z]].max(axis=1)
                             for cls, feats in SIGNATURES.items()})
    passing = evidence > threshold
    best = evidence.idxmax(axis=1).where(~passing.any(axis=1), passing.idxmax(axis=1))
    is_anomaly = score > threshold
    labels = [";".join(sorted(evidence.columns[row > threshold])) or best_cls
              if flag else "normal"
              for row, flag, best_cls in zip(evidence.to_numpy(), is_anomaly, best, strict=True)]
    return pd.DataFrame({
        "anomaly_score": score.astype(np.float32),
        "is_anomaly": is_anomaly,
        "label": np.where(is_anomaly, best, "normal"),
        "labels": labels,
    }, index=features.index)
