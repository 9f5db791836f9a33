"""Statistics over people: repeats averaged first, bootstrap intervals and Wilcoxon over people,
against hand-computed cases."""

import math

import numpy as np
import polars as pl
import pytest

from aestimo.evaluation.people import against_all, bootstrap_ci, paired, per_person, summarize, wilcoxon_p


def _table(rows):
    return pl.DataFrame(
        rows, schema=["source", "rater_id", "method", "k", "repeat", "srocc"], orient="row"
    ).with_columns(pl.col("srocc").alias("plcc"))


def test_repeats_are_averaged_before_people():
    # person A: repeats 0.2 and 0.4 (mean 0.3); person B: one repeat 0.5
    t = _table([("f", "A", "m", 10, 0, 0.2), ("f", "A", "m", 10, 1, 0.4), ("f", "B", "m", 10, 0, 0.5)])
    assert per_person(t)["srocc"].to_list() == pytest.approx([0.3, 0.5])
    s = summarize(t, seed=0, resamples=200).row(0, named=True)
    assert s["people"] == 2 and s["srocc_mean"] == pytest.approx(0.4)  # not (0.2 + 0.4 + 0.5) / 3
    # std over repeats of the people-averaged SROCC, ddof = 1: repeat 0 -> 0.35, repeat 1 -> 0.4
    assert s["srocc_std"] == pytest.approx(np.std([0.35, 0.4], ddof=1))
    assert s["srocc_ci_low"] <= 0.4 <= s["srocc_ci_high"]


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    v = np.random.default_rng(0).uniform(0, 1, 30)
    a, b = bootstrap_ci(v, seed=1, resamples=500), bootstrap_ci(v, seed=1, resamples=500)
    assert a == b and v.min() <= a[0] < v.mean() < a[1] <= v.max()
    assert bootstrap_ci(v, seed=2, resamples=500) != a  # another seed, another draw
    assert bootstrap_ci(np.array([0.5, 0.5]), 0) == (0.5, 0.5)
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([0.5]), 0))


def test_wilcoxon_over_people_matches_the_exact_distribution():
    # five people all better: the exact two-sided p is 2 / 2**5
    assert wilcoxon_p(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == pytest.approx(2 / 32)
    assert math.isnan(wilcoxon_p(np.zeros(3)))


def test_paired_counts_people_not_runs():
    rows = []
    for person, gain in [("A", 0.1), ("B", 0.2), ("C", -0.05)]:
        for rep in range(10):  # ten repeats each: still three people
            rows += [("f", person, "new", 10, rep, 0.5 + gain), ("f", person, "old", 10, rep, 0.5)]
    out = paired(_table(rows), "new", "old", seed=0, resamples=200).row(0, named=True)
    assert out["people"] == 3 and (out["wins"], out["losses"], out["ties"]) == (2, 1, 0)
    assert out["mean_diff"] == pytest.approx((0.1 + 0.2 - 0.05) / 3)
    assert out["wilcoxon_p"] == pytest.approx(wilcoxon_p(np.array([0.1, 0.2, -0.05])))
    assert out["diff_ci_low"] <= out["mean_diff"] <= out["diff_ci_high"]


def test_against_all_leaves_out_the_ceilings():
    t = _table([("f", "w", m, 10, 0, s) for m, s in [("a", 0.5), ("b", 0.4), ("c", 0.6), ("oracle", 0.9)]])
    out = against_all(t, "a", skip=("oracle",), resamples=200)
    assert out["versus"].to_list() == ["b", "c"] and out["mean_diff"].to_list() == pytest.approx([0.1, -0.1])


def test_summary_by_source_splits_people():
    t = _table([("f", "A", "m", 10, 0, 0.2), ("p", "B", "m", 10, 0, 0.6)])
    s = summarize(t, by_source=True, resamples=200)
    assert s.select("source", "people", "srocc_mean").rows() == [("f", 1, 0.2), ("p", 1, 0.6)]


def test_every_method_is_paired_with_the_reference_over_people():
    import polars as pl

    from aestimo.evaluation.people import against_reference

    rows = []
    for person in range(6):
        for rep in range(2):
            base = 0.1 * person + 0.01 * rep
            for method, bump in (("zero_shot_ensemble", 0.0), ("better", 0.1), ("ceiling", 0.5)):
                rows.append({"source": "s", "rater_id": f"p{person}", "method": method, "k": 10, "repeat": rep,
                             "srocc": base + bump, "plcc": base})
    t = against_reference(pl.DataFrame(rows), "zero_shot_ensemble", skip=("ceiling",), resamples=200)
    assert t["method"].to_list() == ["better"] and t["versus"].to_list() == ["zero_shot_ensemble"]
    assert abs(t["mean_diff"].item() - 0.1) < 1e-9 and t["wins"].item() == 6 and t["people"].item() == 6
    assert against_reference(pl.DataFrame(rows), "missing").height == 0
