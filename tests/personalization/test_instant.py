"""Instant λ: per-image features of the linearized merged scorer, the linear solve, shared features."""

import numpy as np
import pytest
import torch

from aestimo.evaluation import metrics
from aestimo.models.merged import MergedScorer, build_task_vectors
from aestimo.models.scorer import template_tensor
from aestimo.personalization.methods import task_vectors as tv
from aestimo.personalization.methods.instant import Instant, InstantOptions, cv_pull, expansion_point, features_for
from aestimo.training.losses import person_loss
from aestimo.personalization.methods.linear_problem import LinearProblem
from aestimo.personalization.methods.linearized import linear_scores, score_features
from aestimo.personalization.registry import Context, Query, Support
from tests.personalization.test_task_vectors import Toy

TEMPLATE = template_tensor("five")



def _solve(base, phi, at, y, init, loss="rank", l2=10.0, max_iter=200):  # loss by name
    """The instant problem of one support set, solved from ``init`` (per layer, or per source when 1-D)."""
    return LinearProblem.of(base, phi, at, layerwise=init.dim() == 2).solve(y, init, person_loss(loss), l2, max_iter)

def toy_world(n_sources=4, seed=0):
    """θ0 scores nothing in particular; expert i turns the score up with input feature i."""
    torch.manual_seed(seed)
    module = Toy()
    with torch.no_grad():
        module.out.weight.mul_(0.01)
    theta0 = {k: v.clone() for k, v in module.state_dict().items()}
    up = torch.linspace(-1, 1, 10)
    experts = {}
    for i in range(n_sources):
        st = {k: v.clone() for k, v in theta0.items()}
        st["body.weight"][i] += 2.0 * torch.eye(4)[i]
        st["out.weight"] = theta0["out.weight"] + 1.5 * up[:, None] * torch.eye(8)[i][None, :]
        experts[f"s{i}"] = st
    return MergedScorer(module, theta0, build_task_vectors(module, theta0, experts))


class Rows:
    """Stands in for the image cache: rows of a fixed input matrix."""

    def __init__(self, x):
        self.x = x

    def __call__(self, rows):
        return self.x[rows]


def toy_context(merged, x):
    ctx = Context(Rows(x), theta0=None, task_vectors=None, experts=merged.sources)
    ctx.__dict__["merged"] = merged  # the toy scorer, not one loaded from a θ0 bundle
    return ctx


def expert_scores(merged, x):
    n, L = merged.shape
    with torch.no_grad():
        return np.stack([(merged(x, torch.eye(n)[i][:, None].expand(n, L)) @ TEMPLATE).numpy() for i in range(n)])


def person_runs(merged, x, target, k, seed, source="flickr_aes"):
    """A person whose taste is source ``target``'s criterion: support of k rows, query of the rest."""
    rows = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    sup, qry = rows[:k], rows[k:]
    y = 3 + x[:, target]
    es = expert_scores(merged, x)
    support = Support(source, f"p{target}", k, 0, seed, sup, y[sup], es[:, sup.numpy()])
    query = Query(source, qry, es[:, qry.numpy()])
    return support, query, y[qry].numpy()


def test_features_equal_finite_difference_directional_derivatives():
    merged = toy_world()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    n, L = merged.shape
    at = torch.rand(n, L, generator=torch.Generator().manual_seed(2))
    base, phi = score_features(merged, x, at, TEMPLATE, batch=4)
    assert base.shape == (6,) and phi.shape == (6, n, L)
    with torch.no_grad():
        np.testing.assert_allclose(base.numpy(), (merged(x, at) @ TEMPLATE).numpy(), rtol=1e-5, atol=1e-6)
        for seed in range(3):
            d = torch.randn(n, L, generator=torch.Generator().manual_seed(10 + seed))
            eps = 1e-2
            fd = ((merged(x, at + eps * d) - merged(x, at - eps * d)) @ TEMPLATE) / (2 * eps)
            np.testing.assert_allclose((phi * d).flatten(1).sum(1).numpy(), fd.numpy(), rtol=2e-2, atol=1e-4)


def test_linear_objective_has_the_exact_objectives_gradient_and_first_adam_step():
    """One source, one coefficient (layer-agnostic): at the expansion point the linear problem's
    gradient, hence the first Adam step, is the exact method's."""
    merged = toy_world(n_sources=1)
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(3))
    y = 3 + x[:, 0]
    init = torch.tensor([0.3])
    n, L = merged.shape
    base, phi = score_features(merged, x, init[:, None].expand(n, L).contiguous(), TEMPLATE)
    lam = init.clone().requires_grad_(True)
    person_loss("rank")(linear_scores(base, phi, init[:, None].expand(n, L), lam), y).backward()
    g_lin = lam.grad.clone()
    lam.grad = None
    person_loss("rank")(merged(x, lam) @ TEMPLATE, y).backward()
    torch.testing.assert_close(g_lin, lam.grad, rtol=1e-4, atol=1e-7)

    cfg = tv.LambdaOptions(layerwise=False, steps=1, batch_size=32, lr=(1e-2, 1e-2))
    exact = tv.personalize(merged, [tv.Person("p", x, y, np.zeros((1, 12)), 0)], TEMPLATE, cfg, progress=False,
                           init=init[None])[0]
    lam_lin = init.clone().requires_grad_(True)
    opt = torch.optim.AdamW([lam_lin], lr=1e-2, weight_decay=0.0)
    person_loss("rank")(linear_scores(base, phi, init[:, None].expand(n, L), lam_lin), y).backward()
    opt.step()
    torch.testing.assert_close(lam_lin.detach(), exact, rtol=1e-5, atol=1e-7)


def test_solve_stays_at_the_initialisation_when_the_pull_dominates_or_nothing_is_ranked():
    g = torch.Generator().manual_seed(4)
    base, phi = torch.randn(10, generator=g), torch.randn(10, 3, 5, generator=g)
    at, init = torch.full((3, 5), 1 / 3), torch.rand(3, 5, generator=g)
    y = torch.randn(10, generator=g)
    far = _solve(base, phi, at, y, init, l2=0.0, max_iter=50)
    held = _solve(base, phi, at, y, init, l2=1e6)
    assert (far - init).abs().max() > 1e-2
    assert (held - init).abs().max() < 1e-4
    flat = _solve(base, phi, at, torch.full((10,), 2.0), init, l2=1.0)  # all scores equal: no pair to rank
    torch.testing.assert_close(flat, init)


def test_instant_learns_the_matching_source_and_beats_zero_shot_on_the_query():
    merged = toy_world()
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(5))
    ctx = toy_context(merged, x)
    method = Instant(InstantOptions(l2=10.0, init="uniform"))  # a pull that keeps λ where the linearization holds
    for target in (1, 3):
        support, query, y_query = person_runs(merged, x, target, k=100, seed=target)
        method.prepare([support], [query], ctx)
        lam = method.fit(support, ctx)["lambda"]
        assert int(lam.mean(dim=1).argmax()) == target, lam.mean(dim=1)
        ours = metrics.srocc(y_query, method.predict({"lambda": lam}, query, ctx))
        zero_shot = metrics.srocc(y_query, query.expert_scores.mean(0))
        assert ours > zero_shot + 0.1, (ours, zero_shot)


def test_shared_features_equal_per_person_features_at_the_same_point():
    merged = toy_world()
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(6))
    ctx = toy_context(merged, x)
    runs = [person_runs(merged, x, t, k=20, seed=t) for t in (0, 1, 2)]
    shared = Instant(InstantOptions(init="uniform"))
    shared.prepare([r[0] for r in runs], [r[1] for r in runs], ctx)  # one pass over everyone's support images
    n, L = merged.shape
    at = torch.full((n, L), 1.0 / n)  # λ0 = uniform: the same point as the shared one
    for support, _, _ in runs:  # the person's own features, computed for them alone
        base, phi = score_features(merged, ctx.images(support.rows), at, ctx.template(support.source), 32)
        alone = LinearProblem.of(base, phi, at).solve(support.y, at.clone(), person_loss("rank"), InstantOptions().l2)
        torch.testing.assert_close(shared.fit(support, ctx)["lambda"], alone, rtol=1e-4, atol=1e-5)
    lin = next(iter(ctx.shared.values()))
    assert len(lin.rows) == len(torch.unique(torch.cat([r[0].rows for r in runs])))  # each image once


def test_features_are_computed_once_and_extended_with_new_rows_only():
    merged = toy_world()
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(7))
    ctx = toy_context(merged, x)
    at = torch.full(merged.shape, 0.25)
    first = features_for(ctx, at, {"flickr_aes": torch.tensor([3, 1, 2])}, batch=2, progress=False)
    more = features_for(ctx, at, {"flickr_aes": torch.tensor([2, 5])}, batch=2, progress=False)
    assert first.rows.tolist() == [1, 2, 3] and more.rows.tolist() == [1, 2, 3, 5]
    b, p = more.take(torch.tensor([5, 1]))
    b_ref, p_ref = score_features(merged, x[[5, 1]], at, TEMPLATE)
    torch.testing.assert_close(b, b_ref)
    torch.testing.assert_close(p, p_ref)
    with pytest.raises(KeyError, match="no features"):
        more.take(torch.tensor([7]))


def test_fit_without_prepare_says_what_to_do_and_mean_init_point_is_the_mean():
    merged = toy_world()
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(8))
    ctx = toy_context(merged, x)
    support, query, _ = person_runs(merged, x, 2, k=10, seed=0)
    with pytest.raises(RuntimeError, match="prepare"):
        Instant().fit(support, ctx)
    s2, _, _ = person_runs(merged, x, 1, k=10, seed=1)
    at = expansion_point(InstantOptions(expand_at="mean_init"), [support, s2], merged.shape)
    cfg = tv.LambdaOptions()
    mean = (tv.init_coefficients(support.expert_scores, support.y.numpy(), merged.shape[1], cfg)
            + tv.init_coefficients(s2.expert_scores, s2.y.numpy(), merged.shape[1], cfg)) / 2
    torch.testing.assert_close(at, mean)


def test_hybrid_takes_exact_steps_from_the_instant_solution_and_layer_agnostic_has_one_per_source():
    merged = toy_world()
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(9))
    ctx = toy_context(merged, x)
    support, query, _ = person_runs(merged, x, 0, k=20, seed=3)
    pure, hybrid = Instant(InstantOptions()), Instant(InstantOptions(hybrid_steps=5, lr=(1e-2, 1e-2)))
    for m in (pure, hybrid):
        m.prepare([support], [query], ctx)
    lam = pure.fit(support, ctx)["lambda"]
    person = tv.Person("p", x[support.rows], support.y, support.expert_scores, support.seed)
    expected = tv.personalize(merged, [person], TEMPLATE, hybrid.options.lambda_options(5), progress=False, init=lam[None])[0]
    torch.testing.assert_close(hybrid.fit(support, ctx)["lambda"], expected)
    agnostic = Instant(InstantOptions(layerwise=False))
    agnostic.prepare([support], [query], ctx)
    assert agnostic.fit(support, ctx)["lambda"].shape == (merged.shape[0],)
    assert np.isfinite(agnostic.predict(agnostic.fit(support, ctx), query, ctx)).all()


def _linear_person(k, signal, seed=7, n=3, L=4):
    """Support features of a person whose ratings follow the linear model at a λ far from λ0 (``signal``
    1) or are pure noise (``signal`` 0); expert scores that give a uniform-ish λ0."""
    g = torch.Generator().manual_seed(seed)
    base, phi = torch.randn(k, generator=g) * 0.1, torch.randn(k, n, L, generator=g)
    at = torch.full((n, L), 1 / n)
    target = at + torch.randn(n, L, generator=g)
    clean = linear_scores(base, phi, at, target)
    y = signal * clean + (1 - signal) * torch.randn(k, generator=g)
    experts = torch.randn(n, k, generator=g).numpy()
    return base, phi, at, y, experts


def test_cv_pull_lets_a_clear_signal_go_and_holds_noise_back():
    grid = (0.3, 3.0, 30.0, 300.0)
    o = InstantOptions(l2_grid=grid, init="uniform", cv_folds=5)
    base, phi, at, y, experts = _linear_person(100, signal=1.0)
    best, mean = cv_pull(base, phi, at, y, experts, o, seed=0, n_layers=4)
    assert best == 0.3 and mean[0.3] > 0.9 > mean[300.0], mean
    base, phi, at, y, experts = _linear_person(100, signal=0.0, seed=8)
    best, mean = cv_pull(base, phi, at, y, experts, o, seed=0, n_layers=4)
    assert max(abs(v) for v in mean.values()) < 0.3, mean  # nothing to learn: held-out folds rank at chance
    # every value ranks nothing (constant ratings): the tie goes to the largest pull
    best, mean = cv_pull(base, phi, at, torch.full((100,), 2.0), experts, o, seed=0, n_layers=4)
    assert best == 300.0 and all(np.isnan(v) for v in mean.values())


def test_cv_pull_never_sees_the_held_out_fold(monkeypatch):
    """Each fold's λ0 (and its fit) comes from the fold's training part alone: the ratings every
    λ0 of the cross-validation is computed from leave out one fold, and the folds left out partition
    the support. Computing a fold's λ0 from the whole support fails here."""
    from aestimo.personalization.methods import instant as instant_module

    seen: list[set[float]] = []
    real = instant_module.tv.init_coefficients

    def spy(expert_scores, y, n_layers, cfg):
        assert expert_scores.shape[1] == len(y)
        seen.append(set(np.asarray(y).tolist()))
        return real(expert_scores, y, n_layers, cfg)

    monkeypatch.setattr(instant_module.tv, "init_coefficients", spy)
    base, phi, at, _, experts = _linear_person(60, signal=1.0)
    y = torch.arange(60, dtype=torch.float32) / 10  # every rating distinct: a call's ratings say which images it saw
    o = InstantOptions(l2_grid=(1.0, 10.0), cv_folds=3)
    cv_pull(base, phi, at, y, experts, o, seed=0, n_layers=4)
    everyone = set(y.tolist())
    left_out = [everyone - s for s in seen]
    assert len(seen) == 3 and all(left_out), "a fold's λ0 saw its held-out fold"
    assert sorted(x for fold in left_out for x in fold) == sorted(everyone)  # the held-out folds partition the support


def test_instant_chooses_its_pull_inside_the_support_from_cv_from_k_only():
    merged = toy_world()
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(5))
    ctx = toy_context(merged, x)
    method = Instant(InstantOptions(l2=10.0, init="uniform", l2_grid=(0.1, 1000.0), cv_from_k=50))
    small, _, _ = person_runs(merged, x, 1, k=20, seed=1)
    large, _, _ = person_runs(merged, x, 1, k=100, seed=1)
    method.prepare([small, large], [], ctx)
    assert float(method.fit(small, ctx)["l2"]) == 10.0  # below cv_from_k: the configured pull
    state = method.fit(large, ctx)
    assert float(state["l2"]) in (0.1, 1000.0)
    base, phi = method._linear(ctx).take(large.rows)
    init = tv.init_coefficients(large.expert_scores, large.y.numpy(), merged.shape[1], method.options.lambda_options(0))
    torch.testing.assert_close(state["lambda"], _solve(base, phi, method._linear(ctx).at, large.y, init, "rank", float(state["l2"])))


def test_the_written_out_gradient_is_autograds_for_both_losses_with_and_without_pairs():
    from aestimo.personalization.methods.linear_problem import LinearObjective

    g = torch.Generator().manual_seed(11)
    k, d = 15, 7
    offset, feats = torch.randn(k, generator=g, dtype=torch.float64), torch.randn(k, d, generator=g, dtype=torch.float64)
    lam0, lam = torch.rand(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    ys = {"ties": torch.tensor([1.0, 2.0, 2.0] * 5, dtype=torch.float64), "flat": torch.full((k,), 3.0, dtype=torch.float64)}
    for loss in ("rank", "mse"):
        for name, y in ys.items():
            value, grad = LinearObjective(offset, feats, y, lam0, person_loss(loss), l2=2.5)(lam)
            x = lam.clone().requires_grad_(True)
            want = person_loss(loss)(offset + feats @ x, y) + (2.5 / k) * (x - lam0).pow(2).sum()
            want.backward()
            torch.testing.assert_close(value, want.detach(), msg=f"{loss}, {name}")
            torch.testing.assert_close(grad, x.grad, msg=f"{loss}, {name}")
