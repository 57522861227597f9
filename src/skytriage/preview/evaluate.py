"""Judge a preview result against truth, in the forms of the JPL study's tables.

- Table 1 form: Welch's t-test per feature, each class against the normal frames
  (t and p), and any anomaly against normal;
- Table 2 form: no-anomaly vs any-anomaly precision, recall, F1 and support for the
  classifier, DBSCAN and Isolation Forest (per dataset and pooled) and the robust z,
  side by side;
- per class precision, recall, F1 (multi-label) and the confusion matrix of the
  dominant label; ROC curves of the scores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_curve

from skytriage.io import write_csv, write_json
from skytriage.preview.detect import ANOMALY_CLASSES, LABELS, ROBUST_Z_THRESHOLD
from skytriage.preview.features import FEATURE_NAMES

DETECTORS = {
    "classifier": "is_anomaly",
    "dbscan (per dataset)": "dbscan_outlier",
    "dbscan (all datasets)": "dbscan_outlier_all",
    "isolation forest (per dataset)": "iforest_outlier",
    "isolation forest (all datasets)": "iforest_outlier_all",
    "robust z > 8": "robust_z",
}
SCORES = {"classifier p(any)": "p_any", "isolation forest": "iforest_score",
          "robust z": "robust_z"}


def join_truth(frames: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Frames with ``truth_label`` and ``truth_labels``, matched on dataset and frame."""
    keys = ["dataset", "frame"]
    renamed = truth[[*keys, "label", "labels"]].rename(
        columns={"label": "truth_label", "labels": "truth_labels"})
    joined = frames.merge(renamed, on=keys, how="inner", validate="one_to_one")
    if joined.empty:
        raise ValueError("no frame of the result matches the truth table on (dataset, frame)")
    return joined


def _label_sets(labels: pd.Series) -> list[set[str]]:
    return [set(str(s).split(";")) - {"normal", ""} for s in labels.fillna("normal")]


def multilabel_scores(truth_labels: pd.Series, predicted_labels: pd.Series) -> dict:
    """Any-anomaly and per-class precision, recall, F1, and macro-F1 over the classes."""
    truth, predicted = _label_sets(truth_labels), _label_sets(predicted_labels)
    any_true = np.array([bool(s) for s in truth])
    any_pred = np.array([bool(s) for s in predicted])
    p, r, f, _ = precision_recall_fscore_support(any_true, any_pred, average="binary",
                                                 zero_division=0)
    per_class = {}
    for cls in ANOMALY_CLASSES:
        t = np.array([cls in s for s in truth])
        q = np.array([cls in s for s in predicted])
        cp, cr, cf, _ = precision_recall_fscore_support(t, q, average="binary",
                                                        zero_division=0)
        per_class[cls] = {"precision": float(cp), "recall": float(cr), "f1": float(cf),
                          "support": int(t.sum())}
    present = [c for c in ANOMALY_CLASSES if per_class[c]["support"] > 0]
    return {"any_precision": float(p), "any_recall": float(r), "any_f1": float(f),
            "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])) if present
            else 0.0, "classes": per_class}


def welch_table(joined: pd.DataFrame) -> pd.DataFrame:
    """Welch's t (class mean − normal mean, unequal variances) and p per feature and class."""
    truth = _label_sets(joined["truth_labels"])
    normal = np.array([not s for s in truth])
    features = [c for c in joined.columns
                if c in FEATURE_NAMES or (c.startswith("rel_") and c[4:] in FEATURE_NAMES)]
    rows = []
    for feature in features:
        values = joined[feature].to_numpy(np.float64)
        row = {"feature": feature}
        for cls in ("any", *ANOMALY_CLASSES):
            member = ~normal if cls == "any" else np.array([cls in s for s in truth])
            if member.sum() < 2 or normal.sum() < 2:
                row[f"t_{cls}"], row[f"p_{cls}"] = np.nan, np.nan
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                result = stats.ttest_ind(values[member], values[normal], equal_var=False)
            row[f"t_{cls}"], row[f"p_{cls}"] = float(result.statistic), float(result.pvalue)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.reindex(table["t_any"].abs().sort_values(ascending=False).index
                         ).reset_index(drop=True)


def detector_table(joined: pd.DataFrame) -> pd.DataFrame:
    """Table 2 form for every detector: per side (no anomaly / anomaly) P, R, F1, support."""
    truth = np.array([bool(s) for s in _label_sets(joined["truth_labels"])])
    rows = []
    for name, column in DETECTORS.items():
        if column not in joined:
            continue
        flag = joined[column].to_numpy()
        if column == "robust_z":
            flag = flag > ROBUST_Z_THRESHOLD
        p, r, f, s = precision_recall_fscore_support(truth, flag.astype(bool), labels=[0, 1],
                                                     zero_division=0)
        for side, i in (("no anomaly", 0), ("anomaly", 1)):
            rows.append({"detector": name, "class": side, "precision": p[i], "recall": r[i],
                         "f1": f[i], "support": int(s[i])})
    return pd.DataFrame(rows)


def class_table(joined: pd.DataFrame) -> pd.DataFrame:
    """Per-class precision, recall, F1, support of the classifier's ``labels``."""
    scores = multilabel_scores(joined["truth_labels"], joined["labels"])
    rows = [{"class": c, **v} for c, v in scores["classes"].items()]
    rows.append({"class": "macro (classes present)", "precision": np.nan, "recall": np.nan,
                 "f1": scores["macro_f1"], "support": int(len(joined))})
    return pd.DataFrame(rows)


def confusion_table(joined: pd.DataFrame) -> pd.DataFrame:
    """Confusion matrix of the dominant label: rows truth, columns prediction."""
    matrix = confusion_matrix(joined["truth_label"], joined["label"], labels=list(LABELS))
    return pd.DataFrame(matrix, index=pd.Index(LABELS, name="truth"), columns=list(LABELS))


def roc_points(joined: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """ROC curve (false-positive rate, true-positive rate) of each anomaly score."""
    truth = np.array([bool(s) for s in _label_sets(joined["truth_labels"])])
    curves = {}
    if truth.all() or not truth.any():
        return curves
    for name, column in SCORES.items():
        if column in joined:
            fpr, tpr, _ = roc_curve(truth, joined[column].to_numpy(np.float64))
            curves[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return curves


@dataclass
class Evaluation:
    """Everything :func:`evaluate` measured; :meth:`write` saves it."""

    summary: dict
    detectors: pd.DataFrame
    classes: pd.DataFrame
    confusion: pd.DataFrame
    ttests: pd.DataFrame
    roc: dict

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write evaluation.json, evaluation.md and one CSV per table into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "evaluation.json", out / "evaluation.md"]
        write_json(paths[0], {"summary": self.summary,
                              "detectors": self.detectors.to_dict(orient="records"),
                              "classes": self.classes.to_dict(orient="records"),
                              "confusion": self.confusion.to_dict(orient="index"),
                              "roc": self.roc})
        from skytriage.io import atomic_path

        with atomic_path(paths[1]) as tmp:
            Path(tmp).write_text(self.markdown(), encoding="utf-8")
        for name, table in (("detectors", self.detectors), ("classes", self.classes),
                            ("confusion", self.confusion.reset_index()),
                            ("ttests", self.ttests)):
            paths.append(out / f"evaluation_{name}.csv")
            write_csv(paths[-1], table)
        return paths

    def markdown(self) -> str:
        """The tables as Markdown (for docs/results.md and terminals)."""
        s = self.summary
        lines = [f"frames {s['frames']}, anomalous {s['anomalous']}; classifier any-anomaly "
                 f"precision {s['any_precision']:.3f} recall {s['any_recall']:.3f} "
                 f"F1 {s['any_f1']:.3f}; macro-F1 over classes {s['macro_f1']:.3f}", "",
                 "## Detectors (no anomaly vs any anomaly)", "",
                 self.detectors.to_markdown(index=False, floatfmt=".3f"), "",
                 "## Classes (classifier, multi-label)", "",
                 self.classes.to_markdown(index=False, floatfmt=".3f"), "",
                 "## Confusion matrix of the dominant label (rows: truth)", "",
                 self.confusion.to_markdown(), "",
                 "## Welch t-tests, 15 features that best separate any anomaly", "",
                 self.ttests.head(15).to_markdown(index=False, floatfmt=".3g"), ""]
        return "\n".join(lines)


def evaluate(frames: pd.DataFrame, truth: pd.DataFrame) -> Evaluation:
    """Compare a preview result (frames.parquet) with a truth table (truth.csv)."""
    joined = join_truth(frames, truth)
    scores = multilabel_scores(joined["truth_labels"], joined["labels"])
    summary = {"frames": int(len(joined)),
               "anomalous": int(sum(bool(s) for s in _label_sets(joined["truth_labels"]))),
               **{k: v for k, v in scores.items() if k != "classes"}}
    return Evaluation(summary=summary, detectors=detector_table(joined),
                      classes=class_table(joined), confusion=confusion_table(joined),
                      ttests=welch_table(joined), roc=roc_points(joined))
