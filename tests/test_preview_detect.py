"""Outlier detectors, the classifier and the evaluation tables on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skytriage.preview.detect import (
    OUTLIER_FEATURES,
    dbscan_outliers,
    isolation_forest_scores,
    knee_eps,
    outlier_columns,
    robust_z_score,
)
from skytriage.preview.evaluate import evaluate, multilabel_scores, welch_table
from skytriage.preview.model import FrameClassifier, decide, label_matrix


def feature_table(n=60, outliers=(7, 33), seed=0, dataset="a"):
    """Relative features: tight noise around 0, a few frames far off in two features."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(rng.normal(0, 0.02, (n, len(OUTLIER_FEATURES))),
                         columns=list(OUTLIER_FEATURES))
    for i in outliers:
        table.loc[i, ["rel_sigma", "rel_line_snr"]] = [1.5, 3.0]
    table["dataset"] = dataset
    table["frame"] = np.arange(n)
    return table


def test_knee_eps_sits_between_cluster_spacing_and_outlier_distance():
    rng = np.random.default_rng(1)
    points = np.vstack([rng.normal(0, 0.1, (100, 2)), [[5.0, 5.0], [-6.0, 4.0]]])
    eps = knee_eps(points)
    assert 0.05 < eps < 2.0


def test_all_three_detectors_find_the_injected_outliers():
    table = feature_table()
    truth = np.zeros(len(table), bool)
    truth[[7, 33]] = True
    assert (dbscan_outliers(table).to_numpy() == truth).all()
    forest = isolation_forest_scores(table)
    assert forest["outlier"][truth].all() and forest["outlier"].sum() <= 6
    assert forest["score"][truth].min() > forest["score"][~truth].max()
    z = robust_z_score(table)
    assert z[truth].min() > 20 and z[~truth].max() < 6


def test_outlier_columns_work_per_dataset_and_pooled():
    table = pd.concat([feature_table(), feature_table(seed=1, dataset="b", outliers=(3,))],
                      ignore_index=True)
    columns = outlier_columns(table)
    assert list(columns.index) == list(table.index)
    assert columns["dbscan_outlier"].sum() == 3 and columns["dbscan_outlier_all"].sum() == 3


def test_tiny_datasets_are_not_called_outliers():
    table = feature_table(n=5, outliers=(2,))
    assert not dbscan_outliers(table).any()
    assert not isolation_forest_scores(table)["outlier"].any()


def test_label_matrix_and_decision():
    matrix = label_matrix(pd.Series(["normal", "cloud;satellite", "camera"]))
    assert matrix.loc[1, "cloud"] and matrix.loc[1, "satellite"] and not matrix.loc[1, "slew"]
    assert matrix["any"].tolist() == [False, True, True]
    proba = pd.DataFrame({"p_any": [0.1, 0.9, 0.4]} | {
        f"p_{c}": [0.0, 0.0, 0.0] for c in ("satellite", "slew", "tracking", "cloud",
                                            "obstruction", "defocus", "background",
                                            "camera")})
    proba.loc[1, ["p_cloud", "p_satellite"]] = [0.8, 0.6]
    proba.loc[2, "p_camera"] = 0.7  # a class alone passes: still anomalous
    decision = decide(proba)
    assert decision["labels"].tolist() == ["normal", "cloud;satellite", "camera"]
    assert decision["label"].tolist() == ["normal", "cloud", "camera"]


def test_classifier_learns_separable_classes_and_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    table = pd.DataFrame({"rel_line_snr": rng.normal(0, 0.1, n), "rel_fwhm": rng.normal(0, 0.1, n),
                          "rel_median": rng.normal(0, 0.1, n)})
    labels = np.array(["normal"] * n, dtype=object)
    labels[:60], labels[60:120] = "satellite", "defocus"
    table.loc[:59, "rel_line_snr"] += 2.0
    table.loc[60:119, "rel_fwhm"] += 1.0
    model = FrameClassifier(max_iter=50).fit(table, pd.Series(labels))
    predicted = model.predict(table)
    assert (predicted["labels"].to_numpy() == labels).mean() > 0.97
    model.save(tmp_path / "m.joblib", {"name": "test"})
    again = FrameClassifier.load(tmp_path / "m.joblib")
    pd.testing.assert_frame_equal(again.predict_proba(table), model.predict_proba(table))
    assert again.card == {"name": "test"}


def test_multilabel_scores_count_each_class():
    truth = pd.Series(["normal", "cloud", "cloud;satellite", "camera", "normal"])
    guess = pd.Series(["normal", "cloud", "cloud", "normal", "satellite"])
    scores = multilabel_scores(truth, guess)
    assert scores["any_precision"] == pytest.approx(2 / 3)
    assert scores["any_recall"] == pytest.approx(2 / 3)
    assert scores["classes"]["cloud"]["f1"] == 1.0
    assert scores["classes"]["camera"]["recall"] == 0.0
    assert scores["classes"]["satellite"]["precision"] == 0.0


def test_welch_table_and_evaluation_on_a_known_split():
    rng = np.random.default_rng(5)
    frames = pd.DataFrame({"dataset": "a", "frame": np.arange(100),
                           "fwhm": rng.normal(3, 0.1, 100), "median": rng.normal(500, 5, 100)})
    frames.loc[:19, "fwhm"] += 2.0
    frames["labels"] = ["defocus"] * 20 + ["normal"] * 80
    frames["label"] = frames["labels"]
    frames["is_anomaly"] = frames["labels"] != "normal"
    truth = frames[["dataset", "frame", "label", "labels"]]
    table = welch_table(frames.assign(truth_labels=frames["labels"]))
    assert table.iloc[0]["feature"] == "fwhm"
    assert table.iloc[0]["t_defocus"] > 30 and table.iloc[0]["p_defocus"] < 1e-10
    row = table.set_index("feature").loc["median"]
    assert abs(row["t_any"]) < 4
    result = evaluate(frames, truth)
    assert result.summary["any_f1"] == 1.0 and result.summary["macro_f1"] == 1.0
    assert result.confusion.loc["defocus", "defocus"] == 20
