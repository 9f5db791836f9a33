"""``mixing_ceiling``: the best linear mix of the experts' outputs, fitted on the query's own ratings."""

import numpy as np
import polars as pl
import pytest
import torch

from aestimo.evaluation import metrics
from aestimo.personalization import Query, Support, method_class
from aestimo.personalization.methods.expert_choice import ZeroShotEnsemble
from aestimo.personalization.methods.oracle import MixingCeiling, Oracle
from aestimo.personalization.running.runs import ConfiguredMethod, RunData, build_jobs, run_data


def _query(ratings, n=3, q=60, seed=0, truth=None):
    g = np.random.default_rng(seed)
    scores = g.normal(5.0, 1.0, (n, q))
    r = ratings(scores, g) if callable(ratings) else ratings
    return Query("ava", torch.arange(q), scores, truth, r)


def _support(k=4):
    return Support("ava", "P1", k, 0, 0, torch.arange(k), torch.arange(k, dtype=torch.float32), np.zeros((3, k)))


def test_mixing_ceiling_is_a_registered_ceiling_that_needs_ratings_not_truth():
    assert method_class("mixing_ceiling") is MixingCeiling
    assert MixingCeiling.ceiling and not MixingCeiling.needs_truth
    assert Oracle.ceiling and Oracle.needs_truth
    assert MixingCeiling().fit(_support(), ctx=None) == {}  # all it learns comes from the query


def test_ratings_that_are_an_exact_mix_are_reached():
    query = _query(lambda s, g: 3.0 + 2.0 * s[0] - 0.5 * s[1] + 0.0 * s[2])
    pred = MixingCeiling().predict({}, query, ctx=None)
    np.testing.assert_allclose(pred, query.ratings, atol=1e-9)
    assert metrics.srocc(query.ratings, pred) == pytest.approx(1.0)
    assert metrics.plcc(query.ratings, pred) == pytest.approx(1.0)


def test_no_fixed_mix_beats_it_in_linear_correlation():
    """Least squares maximises the linear correlation over every affine mix, so the ensemble, each
    expert alone and any other fixed weights score at most its PLCC (SROCC usually follows, but is
    not guaranteed to)."""
    query = _query(lambda s, g: s[0] + 0.7 * s[2] + 1.5 * g.normal(size=s.shape[1]), seed=1)
    best = metrics.plcc(query.ratings, MixingCeiling().predict({}, query, ctx=None))
    g = np.random.default_rng(2)
    mixes = [np.full(3, 1 / 3), *np.eye(3), *g.normal(size=(200, 3))]
    assert all(metrics.plcc(query.ratings, w @ query.expert_scores) <= best + 1e-12 for w in mixes)
    assert best > metrics.plcc(query.ratings, ZeroShotEnsemble().predict({}, query, ctx=None))


def test_collinear_experts_still_give_the_best_mix():
    query = _query(lambda s, g: s[0] + 0.1 * g.normal(size=s.shape[1]), seed=3)
    scores = query.expert_scores.copy()
    scores[1] = 2.0 * scores[0] + 1.0  # one expert an affine copy of another
    collinear = Query("ava", query.rows, scores, None, query.ratings)
    without_copy = Query("ava", query.rows, scores[[0, 2]], None, query.ratings)
    np.testing.assert_allclose(MixingCeiling().predict({}, collinear, ctx=None), MixingCeiling().predict({}, without_copy, ctx=None))


def test_clear_errors_without_ratings_or_with_the_wrong_number():
    with pytest.raises(ValueError, match="no ratings"):
        MixingCeiling().predict({}, _query(None), ctx=None)
    with pytest.raises(ValueError, match="5 ratings for 60 query images"):
        MixingCeiling().predict({}, _query(np.ones(5)), ctx=None)


def test_it_runs_on_real_people_where_the_oracle_has_no_row():
    synthetic = RunData(_support(), _query(lambda s, g: s[0], truth=np.zeros(60)), np.zeros(60))
    real_person = Support("ava", "R1", 4, 0, 0, torch.arange(4), torch.zeros(4), np.zeros((3, 4)))
    real = RunData(real_person, _query(lambda s, g: s[1]), np.zeros(60))
    methods = [ConfiguredMethod("oracle", Oracle()), ConfiguredMethod("mixing_ceiling", MixingCeiling())]
    jobs = build_jobs(methods, [synthetic, real])
    assert [(j.name, j.support.rater_id) for j in jobs] == [("oracle", "P1"), ("mixing_ceiling", "P1"), ("mixing_ceiling", "R1")]


def test_run_data_gives_the_query_its_ratings_on_the_template_scale():
    """spaq rates 0–100 and its template is 1–10: the query carries ``score_template``, not ``score``."""
    ids = [f"s:{i}" for i in range(5)]
    ratings = pl.DataFrame({"source": ["spaq"] * 5, "rater_id": ["P1"] * 5, "image_id": ids,
                            "score": [0.0, 25, 50, 75, 100], "score_template": [1.0, 3.25, 5.5, 7.75, 10]})
    fewshot = pl.DataFrame({"source": ["spaq"] * 5, "rater_id": ["P1"] * 5, "k": [2] * 5, "repeat": [0] * 5, "seed": [9] * 5,
                            "image_id": ids, "role": ["support", "support", "query", "query", "query"]})
    plan = fewshot.select("source", "rater_id", "k", "repeat", "seed").unique()
    probs = np.eye(10)[[0, 2, 4, 6, 9]].tolist()
    predictions = pl.DataFrame({"expert": ["e1"] * 5 + ["e2"] * 5, "image_id": ids * 2, "probs": probs + probs[::-1]})
    (run,) = run_data(plan, fewshot, ratings, predictions, ids)
    assert run.query.ratings.tolist() == [5.5, 7.75, 10.0]
    assert run.y_query.tolist() == [50.0, 75.0, 100.0] and run.query.truth is None
    assert run.support.y.tolist() == [1.0, 3.25]
