"""``output_mix``: a person's own affine mix of the experts' zero-shot scores."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from aestimo import config
from aestimo.data.scales import SCALES
from aestimo.evaluation import metrics
from aestimo.personalization import Query, Support, method_class
from aestimo.personalization.methods.output_mix import OutputMix, fit_mix

TAU = float(np.std(SCALES["flickr_aes"].template_values))


def _person(k, seed=0, n=4, q=200, follows=2):
    """n experts with similar spreads; the person's support scores are exactly expert ``follows``'s."""
    g = np.random.default_rng(seed)
    s, sq = g.normal(3.0, 0.5, (n, k)), g.normal(3.0, 0.5, (n, q))
    support = Support("flickr_aes", "P1", k, 0, seed, torch.arange(k), torch.as_tensor(s[follows], dtype=torch.float32), s)
    return support, Query("flickr_aes", torch.arange(q), sq)


def test_output_mix_is_registered_and_its_state_is_an_affine_mix():
    assert method_class("output_mix") is OutputMix
    support, query = _person(30)
    state = OutputMix().fit(support, ctx=None)
    assert state["weights"].shape == (4,) and state["bias"].shape == (1,)
    expected = float(state["bias"][0]) + state["weights"].double().numpy() @ query.expert_scores
    np.testing.assert_allclose(OutputMix().predict(state, query, ctx=None), expected)


@pytest.mark.parametrize("k", [10, 100])
def test_a_person_who_is_one_expert_gets_most_weight_on_that_expert(k):
    support, query = _person(k)
    state = OutputMix().fit(support, ctx=None)  # the rank loss, pulled toward the ensemble
    assert int(state["weights"].argmax()) == 2
    pred = OutputMix().predict(state, query, ctx=None)
    assert metrics.srocc(query.expert_scores[2], pred) > (0.98 if k == 100 else 0.8)
    assert metrics.srocc(query.expert_scores[2], pred) > metrics.srocc(query.expert_scores[2], query.expert_scores.mean(axis=0))


def test_without_the_pull_mse_recovers_the_expert_exactly_and_ranks_the_query_perfectly():
    support, query = _person(10)
    method = OutputMix(OutputMix.Options(loss="mse", l2=0.0))
    state = method.fit(support, ctx=None)
    np.testing.assert_allclose(state["weights"].numpy(), [0, 0, 1, 0], atol=1e-5)
    assert abs(float(state["bias"][0])) < 1e-4
    assert metrics.srocc(query.expert_scores[2], method.predict(state, query, ctx=None)) == pytest.approx(1.0)


def test_it_starts_at_the_zero_shot_ensemble_and_a_strong_pull_keeps_it_there():
    support, query = _person(10)
    for loss in ("rank", "mse"):
        state = OutputMix(OutputMix.Options(loss=loss, l2=1e9)).fit(support, ctx=None)
        np.testing.assert_allclose(state["weights"].numpy(), 0.25, atol=1e-4)
    # a person whose scores are the ensemble's plus a constant: the start is the MSE optimum at any pull
    g = np.random.default_rng(3)
    s = g.normal(3.0, 0.5, (3, 12))
    w, b = fit_mix(s, s.mean(axis=0) + 0.5, "mse", 20.0, TAU)
    np.testing.assert_allclose(w, 1 / 3, atol=1e-6)
    assert b == pytest.approx(0.5, abs=1e-6)
    # no untied pair (all support scores equal): the rank loss has nothing to learn, the ensemble stays
    w, b = fit_mix(s, np.full(12, 3.0), "rank", 20.0, TAU)
    np.testing.assert_allclose(w, 1 / 3, atol=1e-9)
    np.testing.assert_allclose(b + w @ s, s.mean(axis=0), atol=1e-9)


def test_mse_is_solved_to_the_closed_form_optimum():
    """L-BFGS on the MSE objective lands on its closed-form ridge solution (standardised coordinates)."""
    g = np.random.default_rng(1)
    n, k, l2 = 5, 15, 7.0
    s = g.normal(3.0, 1.0, (n, k)) * g.uniform(0.2, 1.0, (n, 1))
    y = g.normal(3.0, 1.0, k)
    mu, sd = s.mean(axis=1), s.std(axis=1)
    z = (s - mu[:, None]) / sd[:, None]
    u0, r = sd / n, l2 / (k * TAU**2)
    u = np.linalg.solve(z @ z.T / k + r * np.eye(n), z @ (y - y.mean()) / k + r * u0)
    w_exact = u / sd
    b_exact = y.mean() - w_exact @ mu
    w, b = fit_mix(s, y, "mse", l2, TAU)
    np.testing.assert_allclose(w, w_exact, atol=1e-7)
    assert b == pytest.approx(b_exact, abs=1e-6)


def test_an_expert_constant_on_the_support_keeps_its_starting_weight():
    g = np.random.default_rng(2)
    s = g.normal(3.0, 0.5, (3, 10))
    s[1] = 2.5
    w, b = fit_mix(s, s[0], "rank", 20.0, TAU)
    assert np.isfinite(w).all() and np.isfinite(b)
    assert w[1] == pytest.approx(1 / 3)


def test_the_fit_is_deterministic():
    support, _ = _person(100, seed=4)
    a, b = OutputMix().fit(support, ctx=None), OutputMix().fit(support, ctx=None)
    assert all(torch.equal(a[key], b[key]) for key in ("weights", "bias"))


def test_bad_options_are_refused_and_the_entry_is_built_from_configuration():
    with pytest.raises(ValidationError):
        OutputMix.Options(loss="hinge")
    with pytest.raises(ValidationError):
        OutputMix.Options(l2=-1.0)
    methods = {"layerwise_rank": {"method": "task_vectors"}, "output_mix": {"method": "output_mix"},
               "output_mix_mse": {"method": "output_mix", "loss": "mse", "ks": [10]}}
    p = config.parse("personalize", {"methods": methods, "defaults": {"steps": 50, "lr": [1e-2, 1e-3]}})
    built = {m.name: m for m in p.configured_methods(["a", "b"])}
    assert built["output_mix"].method.options.model_dump() == {"loss": "rank", "l2": 10.0}  # the λ defaults stay out
    assert built["output_mix_mse"].method.options.loss == "mse"
    assert built["output_mix_mse"].ks == [10]
