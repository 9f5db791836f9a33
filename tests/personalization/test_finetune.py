"""Fine-tuning baselines from the zero-shot (uniform-λ) model: the head only, or every parameter."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from aestimo import config
from aestimo.evaluation import metrics
from aestimo.models.head import ScoreHead
from aestimo.models.merged import MergedScorer, build_task_vectors
from aestimo.models.scorer import Scorer
from aestimo.personalization import method_class
from aestimo.personalization.methods.field import multi_attribute # noqa: F401  (registers multi_attribute)
from aestimo.personalization.methods.finetune import (
    SHARED_KEY,
    FinetuneAll,
    FinetuneAllOptions,
    FinetuneHead,
    FinetuneHeadOptions,
    scores,
    zero_shot_parameters,
)
from aestimo.training.losses import person_loss
from tests.personalization.test_instant import TEMPLATE, person_runs, toy_context, toy_world

TOY_HEAD = ("out.",)  # the toy module's last layer


def scorer_world(n_sources=3, seed=0):
    """A real Scorer (backbone with batch norm, ScoreHead with dropout) and random experts."""
    torch.manual_seed(seed)
    module = Scorer(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh()), ScoreHead(8, hidden=16, dropout=0.5),
                    channels_last=False)
    bn = module.backbone[1]
    bn.running_mean.copy_(torch.linspace(-0.5, 0.5, 8))
    bn.running_var.copy_(torch.linspace(0.5, 2.0, 8))
    theta0 = {k: v.clone() for k, v in module.state_dict().items()}
    g = torch.Generator().manual_seed(seed + 1)
    experts = {}
    for i in range(n_sources):
        st = {k: v.clone() for k, v in theta0.items()}
        for name, p in module.named_parameters():
            st[name] = theta0[name] + 0.3 * torch.randn(p.shape, generator=g)
        experts[f"s{i}"] = st
    return MergedScorer(module, theta0, build_task_vectors(module, theta0, experts))


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _support_loss(merged, params, support, x):
    with torch.no_grad():
        return float(person_loss("rank")(scores(merged.module, params, x[support.rows], TEMPLATE), support.y))


def test_finetune_head_lowers_the_support_loss_and_changes_only_head_tensors():
    assert method_class("finetune_head") is FinetuneHead and method_class("finetune_all") is FinetuneAll
    merged = toy_world()
    x = torch.randn(80, 4, generator=torch.Generator().manual_seed(0))
    ctx = toy_context(merged, x)
    support, query, _ = person_runs(merged, x, 2, k=20, seed=0)
    before = _snapshot(merged.module)
    method = FinetuneHead(FinetuneHeadOptions(head=TOY_HEAD, learning_rate=1e-2))
    state = method.fit(support, ctx)
    assert set(state) == {"out.weight", "out.bias"}
    base = zero_shot_parameters(merged)
    assert not torch.equal(state["out.weight"], base["out.weight"])
    assert _support_loss(merged, {**base, **state}, support, x) < _support_loss(merged, base, support, x) - 0.05
    assert all(torch.equal(v, before[k]) for k, v in merged.module.state_dict().items())  # the shared module untouched
    again = method.fit(support, ctx)
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert method.predict(state, query, ctx).shape == (len(query.rows),)
    with pytest.raises(ValueError, match="no parameter starts with"):
        FinetuneHead().fit(support, ctx)  # the toy has no "head."


def test_finetune_head_learns_a_person_whose_taste_is_one_experts_criterion():
    merged = toy_world()
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(5))
    ctx = toy_context(merged, x)
    method = FinetuneHead(FinetuneHeadOptions(head=TOY_HEAD, learning_rate=1e-2))
    untrained = FinetuneHead(FinetuneHeadOptions(head=TOY_HEAD, steps=0))  # the zero-shot model's own head
    for target in (1, 3):
        support, query, y_query = person_runs(merged, x, target, k=100, seed=target)
        ours = metrics.srocc(y_query, method.predict(method.fit(support, ctx), query, ctx))
        zero_shot = metrics.srocc(y_query, untrained.predict(untrained.fit(support, ctx), query, ctx))
        assert ours > 0.5 and ours > zero_shot + 0.05, (target, ours, zero_shot)


def test_on_a_scorer_cached_features_give_the_full_forwards_answer_once_per_image():
    merged = scorer_world()
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(1))
    support, query, _ = person_runs(merged, x, 0, k=20, seed=0, source="flickr_aes")
    cached_ctx, full_ctx = toy_context(merged, x), toy_context(merged, x)
    cached = FinetuneHead(FinetuneHeadOptions(learning_rate=1e-2))
    full = FinetuneHead(FinetuneHeadOptions(learning_rate=1e-2, cache_features=False))
    cached.prepare([support], [query], cached_ctx)
    assert len(cached_ctx.shared[SHARED_KEY].pos) == 60
    a, b = cached.fit(support, cached_ctx), full.fit(support, full_ctx)
    assert set(a) == {"head.fc1.weight", "head.fc1.bias", "head.fc2.weight", "head.fc2.bias"}
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cached.predict(a, query, cached_ctx), full.predict(b, query, full_ctx), rtol=1e-5, atol=1e-5)
    assert SHARED_KEY not in full_ctx.shared


def test_finetune_all_changes_body_parameters_never_buffers_and_is_seeded():
    merged = scorer_world()
    x = torch.randn(80, 4, generator=torch.Generator().manual_seed(2))
    ctx = toy_context(merged, x)
    support, query, _ = person_runs(merged, x, 1, k=50, seed=3)
    before = _snapshot(merged.module)
    buffers = {k: v.clone() for k, v in merged.buffers.items()}
    method = FinetuneAll(FinetuneAllOptions(learning_rate=1e-2, batch_size=16))
    state = method.fit(support, ctx)
    assert set(state) == {n for n, _ in merged.module.named_parameters()}  # every parameter, no buffer
    base = zero_shot_parameters(merged)
    assert not torch.equal(state["backbone.0.weight"], base["backbone.0.weight"])
    assert all(torch.equal(v, before[k]) for k, v in merged.module.state_dict().items())
    assert all(torch.equal(v, buffers[k]) for k, v in merged.buffers.items())
    assert _support_loss(merged, {**base, **state}, support, x) < _support_loss(merged, base, support, x)
    # eval-mode batch norm and no dropout: an image scores the same alone as in a batch, every time
    pred = method.predict(state, query, ctx)
    assert pred.shape == (len(query.rows),)
    alone = np.array([method.predict(state, replace(query, rows=query.rows[i : i + 1]), ctx)[0] for i in range(3)])
    np.testing.assert_allclose(alone, pred[:3], rtol=1e-5, atol=1e-6)
    again = method.fit(support, ctx)
    assert all(torch.equal(state[k], again[k]) for k in state)
    other = method.fit(replace(support, seed=99), ctx)
    assert any(not torch.equal(state[k], other[k]) for k in state)  # other mini-batches


def test_entries_take_the_step_budget_from_defaults_but_not_lambdas_learning_rate():
    methods = {"finetune_head": {"method": "finetune_head"}, "finetune_all": {"method": "finetune_all", "learning_rate": 3e-5},
               "multi_attribute": {"method": "multi_attribute"}}
    defaults = {"steps": 20, "batch_size": 16, "lr": [1e-2, 1e-3], "weight_decay": 0.0, "dropout": 0.0, "init_temperature": 10.0}
    built = {m.name: m.method for m in config.parse("personalize", {"methods": methods, "defaults": defaults}).configured_methods(["a"])}
    assert built["finetune_head"].options.steps == 20 and built["finetune_head"].options.learning_rate == 1e-3
    assert built["finetune_all"].options.batch_size == 16 and built["finetune_all"].options.learning_rate == 3e-5
    assert isinstance(built["multi_attribute"], method_class("multi_attribute"))
