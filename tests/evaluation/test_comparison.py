"""Paired comparison of methods: differences, wins and the Wilcoxon test on known inputs."""

import math

import numpy as np
import polars as pl
from scipy import stats

from aestimo.evaluation.comparison import against_all, paired, wilcoxon_p


def _table(rows):
    return pl.DataFrame(rows, schema=["source", "rater_id", "method", "k", "repeat", "srocc"], orient="row")


def test_paired_counts_wins_on_the_same_runs_only():
    t = _table(
        [
            ("para", "u1", "a", 10, 0, 0.5), ("para", "u1", "b", 10, 0, 0.3),
            ("para", "u2", "a", 10, 0, 0.2), ("para", "u2", "b", 10, 0, 0.4),
            ("para", "u3", "a", 10, 0, 0.1), ("para", "u3", "b", 10, 0, 0.1),
            ("para", "u4", "a", 10, 0, 0.9),  # b never ran u4: not paired
            ("para", "u1", "a", 100, 0, 0.6), ("para", "u1", "b", 100, 0, float("nan")),  # undefined SROCC: dropped
        ]
    )
    out = paired(t, "a", "b")
    assert out["k"].to_list() == [10]
    r = out.row(0, named=True)
    assert (r["runs"], r["wins"], r["losses"], r["ties"]) == (3, 1, 1, 1)
    assert math.isclose(r["mean_diff"], (0.2 - 0.2 + 0.0) / 3, abs_tol=1e-12)


def test_wilcoxon_matches_scipy_and_is_nan_without_differences():
    d = np.array([0.1, 0.2, -0.05, 0.3, 0.15, 0.0])
    assert math.isclose(wilcoxon_p(d), stats.wilcoxon(d[d != 0]).pvalue)
    assert math.isnan(wilcoxon_p(np.zeros(4)))
    assert wilcoxon_p(np.full(10, 0.1) + np.arange(10) * 0.01) < 0.01  # always better: significant


def test_against_all_leaves_out_the_ceilings():
    t = _table([("f", "w", m, 10, 0, s) for m, s in [("a", 0.5), ("b", 0.4), ("c", 0.6), ("oracle", 0.9)]])
    out = against_all(t, "a", skip=("oracle",))
    assert out["versus"].to_list() == ["b", "c"]
    assert out["mean_diff"].to_list() == [0.5 - 0.4, 0.5 - 0.6]
