"""Metrics with known answers."""

import math

import numpy as np
import pytest

from aestimo.evaluation import metrics
from aestimo.evaluation.metrics import binary_accuracy, emd_per_sample, plcc, regression_report, srocc, tail_mae


def test_correlations_known_values():
    y = [1, 2, 3, 4, 5]
    assert srocc(y, [2, 4, 6, 8, 10]) == pytest.approx(1.0)
    assert srocc(y, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert srocc(y, [1, 4, 9, 16, 25]) == pytest.approx(1.0)  # monotone, not linear
    assert plcc(y, [1, 4, 9, 16, 25]) < 1.0
    assert plcc(y, [3, 5, 7, 9, 11]) == pytest.approx(1.0)
    # spearman of [1,2,3] vs [1,3,2]: d = [0, 1, 1] -> 1 - 6*2/(3*8) = 0.5
    assert srocc([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def test_correlations_equal_scipys_with_ties_and_non_finite_pairs():
    from scipy import stats

    rng = np.random.default_rng(0)
    for n in (3, 10, 150):
        y = rng.integers(1, 6, n).astype(float)  # ratings: many ties
        p = rng.normal(size=n).round(1)
        p[0] = np.nan  # dropped, as every metric here drops non-finite pairs
        keep = np.isfinite(p)
        assert srocc(y, p) == pytest.approx(stats.spearmanr(y[keep], p[keep]).statistic, abs=1e-12)
        assert plcc(y, p) == pytest.approx(stats.pearsonr(y[keep], p[keep]).statistic, abs=1e-12)


def test_correlations_undefined_give_nan():
    assert math.isnan(srocc([1, 2, 3], [4, 4, 4]))
    assert math.isnan(plcc([2, 2, 2], [1, 2, 3]))
    assert math.isnan(plcc([1], [1]))
    assert srocc([1, 2, np.nan, 4], [1, 2, 3, 4]) == pytest.approx(1.0)  # NaN pairs dropped


def test_binary_accuracy():
    y = np.array([3.0, 6.0, 5.0, 7.0])
    p = np.array([4.0, 5.5, 4.9, 2.0])
    # high iff >= 5: y [F, T, T, T], p [F, T, F, F] -> 2 / 4
    assert binary_accuracy(y, p, 5.0) == 0.5


def test_emd_per_sample():
    out = emd_per_sample([[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]])
    assert out == pytest.approx([math.sqrt(0.5), 0.0])


def test_tail_mae_groups():
    y = np.arange(1.0, 11.0)  # q20 = 2.8, q80 = 8.2 -> low {1, 2}, high {9, 10}
    p = y.copy()
    p[:2] += 1.0
    p[2:8] += 2.0
    p[8:] -= 3.0
    assert tail_mae(y, p) == {"low": 1.0, "middle": 2.0, "high": 3.0}


def test_regression_report():
    y = np.arange(1.0, 11.0)
    p = y + 0.5
    dist = np.eye(10)[[0, 1]]
    dist_pred = np.eye(10)[[1, 1]]
    rep = regression_report(y, p, threshold=5.2, dist_true=dist, dist_pred=dist_pred)
    assert rep["n"] == 10
    assert rep["plcc"] == pytest.approx(1.0) and rep["srocc"] == pytest.approx(1.0)
    assert rep["mae"] == pytest.approx(0.5) and rep["rmse"] == pytest.approx(0.5)
    assert rep["accuracy"] == pytest.approx(0.9)  # only y=5 (low) -> p=5.5 (high) crosses 5.2
    assert rep["emd"] == pytest.approx(math.sqrt(0.1) / 2)
    assert rep["mae_low"] == rep["mae_middle"] == rep["mae_high"] == pytest.approx(0.5)
    assert "emd" not in regression_report(y, p)


def test_segment_mae_is_segment_metrics_mae_column():
    g = np.random.default_rng(3)
    y = np.r_[g.normal(5, 2, 60), np.nan, 4.0, 4.0, 4.0]
    p = np.r_[g.normal(5, 1, 60), 3.0, np.nan, 4.5, 3.5]
    for bounds in (None, (3.0, 6.0), (100.0, 200.0)):  # the last leaves "middle" and "high" empty
        want = {r["segment"]: r["mae"] for r in metrics.segment_metrics(y, p, bounds)}
        got = metrics.segment_mae(y, p, bounds)
        assert got.keys() == want.keys()
        for k in want:
            assert (np.isnan(got[k]) and np.isnan(want[k])) or got[k] == pytest.approx(want[k], rel=1e-12), k
