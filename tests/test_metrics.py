"""GLUE metrics against independent numpy formulas on random inputs."""

import numpy as np
import pytest

from bertprune.metrics import glue_metrics, headline


def _ranks(x):
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    # average ranks of ties
    for v in np.unique(x):
        idx = x == v
        ranks[idx] = ranks[idx].mean()
    return ranks


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics(seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    tp, tn = np.sum((p == 1) & (y == 1)), np.sum((p == 0) & (y == 0))
    fp, fn = np.sum((p == 1) & (y == 0)), np.sum((p == 0) & (y == 1))
    m = glue_metrics("mrpc", p, y)
    assert m["accuracy"] == pytest.approx((tp + tn) / 200)
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    mcc = (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    assert glue_metrics("cola", p, y)["mcc"] == pytest.approx(mcc)
    assert set(glue_metrics("qqp", p, y)) == {"accuracy", "f1"}
    assert set(glue_metrics("rte", p, y)) == {"accuracy"}
    y3, p3 = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    assert glue_metrics("mnli", p3, y3)["accuracy"] == pytest.approx(np.mean(p3 == y3))


@pytest.mark.parametrize("seed", range(5))
def test_regression_metrics(seed):
    rng = np.random.default_rng(seed)
    y = np.round(rng.uniform(0, 5, 300), 1)  # ties, like STS-B's scores
    p = y + rng.normal(0, 1.5, 300)
    m = glue_metrics("stsb", p, y)
    assert m["pearson"] == pytest.approx(np.corrcoef(p, y)[0, 1])
    assert m["spearman"] == pytest.approx(np.corrcoef(_ranks(p), _ranks(y))[0, 1])


def test_constant_predictions_give_zero_correlation_not_nan():
    assert glue_metrics("stsb", np.ones(5), np.arange(5.0)) == {"pearson": 0.0, "spearman": 0.0}
    assert headline({"f1": 0.8125}, "f1") == pytest.approx(81.25)
