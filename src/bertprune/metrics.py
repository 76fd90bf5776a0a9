"""The official GLUE metrics, computed with scikit-learn and scipy.

accuracy (all classification tasks), F1 of the positive class and accuracy (MRPC, QQP), Matthews
correlation (CoLA), Pearson and Spearman correlation (STS-B). Values are fractions in [0, 1]
(correlations in [-1, 1]); :func:`headline` gives the task's usual headline on a 0-100 scale.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def glue_metrics(task: str, predictions, labels) -> dict[str, float]:
    """Metrics of one GLUE task. ``predictions``: class ids, or scores for ``stsb``."""
    preds = np.asarray(predictions)
    gold = np.asarray(labels)
    if task == "stsb":
        if np.std(preds) == 0 or np.std(gold) == 0:  # correlation undefined: report 0, not NaN
            return {"pearson": 0.0, "spearman": 0.0}
        return {"pearson": float(pearsonr(preds, gold)[0]), "spearman": float(spearmanr(preds, gold)[0])}
    out = {"accuracy": float(accuracy_score(gold, preds))}
    if task in ("mrpc", "qqp"):
        out["f1"] = float(f1_score(gold, preds, zero_division=0.0))
    if task == "cola":
        out["mcc"] = float(matthews_corrcoef(gold, preds))
    return out


def own_data_metrics(regression: bool, predictions, labels, num_labels: int | None = None) -> dict[str, float]:
    """Metrics of a text_classification (accuracy, macro-F1) or text_regression (Pearson, Spearman) task."""
    if regression:
        return glue_metrics("stsb", predictions, labels)
    gold = np.asarray(labels)
    preds = np.asarray(predictions)
    classes = list(range(num_labels)) if num_labels else None  # a class absent from the dev set counts as F1 0
    return {"accuracy": float(accuracy_score(gold, preds)),
            "f1_macro": float(f1_score(gold, preds, labels=classes, average="macro", zero_division=0.0))}


def headline(metrics: dict[str, float], main_metric: str) -> float:
    return 100.0 * metrics[main_metric]
