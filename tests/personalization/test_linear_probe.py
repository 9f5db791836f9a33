"""``linear_probe``: ridge on θ0's pooled backbone features, its strength chosen by leave-one-out."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from aestimo import config
from aestimo.evaluation import metrics
from aestimo.personalization import Query, Support, method_class
from aestimo.personalization.methods.linear_probe import DEFAULT_ALPHAS, LinearProbe, ridge_loo
from aestimo.personalization.registry import Context


def _ctx(features):
    """A Context with only what the probe reads: the cached images' features."""
    return Context(images=None, theta0=None, task_vectors=None, experts=["a", "b"],
                   features=torch.as_tensor(features, dtype=torch.float32))


def _low_rank_features(g, n=300, rank=5, d=256, noise=0.0):
    return g.normal(size=(n, rank)) @ g.normal(size=(rank, d)) + noise * g.normal(size=(n, d))


def _person(features, y, k, seed=0):
    """Support: the first k cached images; query: the rest (both with the person's scores y)."""
    n = len(features)
    support = Support("ava", "P1", k, 0, seed, torch.arange(k), torch.as_tensor(y[:k], dtype=torch.float32), np.zeros((2, k)))
    return support, Query("ava", torch.arange(k, n), np.zeros((2, n - k)))


def _relative(alpha, x):
    xc = x - x.mean(axis=0)
    return alpha / ((xc**2).sum() / len(x))


def test_linear_probe_is_registered_and_predicts_features_at_w_plus_b():
    assert method_class("linear_probe") is LinearProbe
    g = np.random.default_rng(0)
    f = _low_rank_features(g, d=64)
    support, query = _person(f, f @ g.normal(size=64), k=10)
    ctx = _ctx(f)
    state = LinearProbe().fit(support, ctx)
    assert state["w"].shape == (64,) and state["b"].shape == (1,) and state["alpha"].shape == (1,)
    expected = f[10:] @ state["w"].double().numpy() + float(state["b"][0])
    np.testing.assert_allclose(LinearProbe().predict(state, query, ctx), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [10, 30])
def test_scores_linear_in_the_features_are_recovered_with_a_weak_strength(k):
    """The person's scores are a linear function of features that span 5 of 256 dimensions: even
    from 10 images the probe ranks the other 290 perfectly, with the weakest strength of the grid."""
    g = np.random.default_rng(1)
    f = _low_rank_features(g)
    y = 3.0 + f @ g.normal(size=256) * 0.01
    support, query = _person(f, y, k)
    ctx = _ctx(f)
    state = LinearProbe().fit(support, ctx)
    assert _relative(float(state["alpha"][0]), f[:k].astype(np.float32)) == pytest.approx(min(DEFAULT_ALPHAS), rel=1e-3)
    assert metrics.srocc(y[k:], LinearProbe().predict(state, query, ctx)) > 0.999


def test_on_pure_noise_leave_one_out_picks_strong_strengths_and_on_a_signal_weak_ones():
    """k = 10 noise targets: leave-one-out prefers (near) the strongest strength in most draws, never
    so on a target that is linear in the features. (LOO on 10 images is noisy: not in every draw.)"""
    strong_noise, strong_signal = 0, 0
    for seed in range(100):
        g = np.random.default_rng(seed)
        x = g.normal(size=(10, 5))
        _, _, a, _ = ridge_loo(x, g.normal(size=10), DEFAULT_ALPHAS)
        strong_noise += _relative(a, x) >= 100
        _, _, a, _ = ridge_loo(x, x @ g.normal(size=5) + 0.05 * g.normal(size=10), DEFAULT_ALPHAS)
        strong_signal += _relative(a, x) >= 100
    assert strong_noise >= 40 and strong_signal == 0
    # and the strongest strength leaves the mean and a whisper of Xcᵀ y: the support is barely fitted
    g = np.random.default_rng(7)
    x, y = g.normal(size=(10, 5)), g.normal(size=10)
    w, b, a, errors = ridge_loo(x, y, (1e4,))
    assert np.abs(x @ w + b - y.mean()).max() < 1e-2 * y.std()


def test_leave_one_out_errors_match_refitting_without_each_image():
    g = np.random.default_rng(2)
    for d in (4, 20):  # fewer and more features than images
        x, y = g.normal(size=(8, d)), g.normal(size=8)
        alphas = (0.01, 1.0, 100.0)
        _, _, _, errors = ridge_loo(x, y, alphas)
        scale = ((x - x.mean(axis=0)) ** 2).sum() / 8
        for alpha, err in zip(alphas, errors):
            residuals = []
            for i in range(8):
                keep = np.arange(8) != i
                xk, yk = x[keep], y[keep]
                xm, ym = xk.mean(axis=0), yk.mean()
                w = np.linalg.solve((xk - xm).T @ (xk - xm) + alpha * scale * np.eye(d), (xk - xm).T @ (yk - ym))
                residuals.append(y[i] - (ym + (x[i] - xm) @ w))
            assert err == pytest.approx(np.mean(np.square(residuals)), rel=1e-8)


def test_a_single_strength_is_used_as_is_and_the_fit_is_deterministic():
    g = np.random.default_rng(3)
    f = _low_rank_features(g, noise=0.1)
    support, _ = _person(f, g.normal(size=300), k=100, seed=11)
    ctx = _ctx(f)
    fixed = LinearProbe(LinearProbe.Options(alphas=(2.0,))).fit(support, ctx)
    assert _relative(float(fixed["alpha"][0]), f[:100].astype(np.float32)) == pytest.approx(2.0, rel=1e-4)
    a, b = LinearProbe().fit(support, ctx), LinearProbe().fit(support, ctx)
    assert all(torch.equal(a[key], b[key]) for key in ("w", "b", "alpha"))


def test_all_equal_support_scores_give_a_constant_prediction():
    g = np.random.default_rng(4)
    f = _low_rank_features(g)
    support, query = _person(f, np.full(300, 4.0), k=10)
    state = LinearProbe().fit(support, _ctx(f))
    assert torch.all(state["w"] == 0) and float(state["b"][0]) == pytest.approx(4.0)


def test_clear_errors_without_features_or_with_too_few_images():
    g = np.random.default_rng(5)
    f = _low_rank_features(g)
    support, query = _person(f, g.normal(size=300), k=10)
    no_features = Context(images=None, theta0=None, task_vectors=None, experts=["a", "b"])
    for ctx in (no_features, None):
        with pytest.raises(ValueError, match=r"no backbone features \(ctx.features is None\)"):
            LinearProbe().fit(support, ctx)
    with pytest.raises(ValueError, match="no backbone features"):
        LinearProbe().predict({"w": torch.zeros(256), "b": torch.zeros(1), "alpha": torch.ones(1)}, query, no_features)
    with pytest.raises(ValueError, match="at least 3 support images"):
        ridge_loo(f[:2], np.array([1.0, 2.0]), DEFAULT_ALPHAS)


def test_bad_options_are_refused_and_the_entry_is_built_from_configuration():
    for bad in ((), (0.0,), (-1.0, 1.0)):
        with pytest.raises(ValidationError):
            LinearProbe.Options(alphas=bad)
    methods = {"layerwise_rank": {"method": "task_vectors"}, "linear_probe": {"method": "linear_probe"}}
    p = config.parse("personalize", {"methods": methods, "defaults": {"steps": 50}})
    built = {m.name: m for m in p.configured_methods(["a", "b"])}
    assert built["linear_probe"].method.options.alphas == DEFAULT_ALPHAS
