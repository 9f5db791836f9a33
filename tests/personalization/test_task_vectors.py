"""λ learning (the task_vectors method): initialisation, batched = looped, the known answer."""

import numpy as np

import pytest
import torch
from torch import nn

from aestimo.bundle import TensorBundle
from aestimo.models.head import ScoreHead, sigmoid_distribution
from aestimo.models.scorer import Scorer, template_tensor
from aestimo.models.merged import MergedScorer, build_task_vectors
from aestimo.personalization.methods.task_vectors import LambdaOptions, Person, init_coefficients, personalize, predict


def test_init_is_softmax_of_ten_times_srocc_broadcast_over_layers():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    scores = np.array([[1, 2, 3, 4], [4, 3, 2, 1], [1, 1, 1, 1]], dtype=float)  # SROCC +1, -1, undefined (0)
    lam = init_coefficients(scores, y, n_layers=5, cfg=LambdaOptions())
    e = np.exp([10.0, -10.0, 0.0])
    np.testing.assert_allclose(lam[:, 0].numpy(), e / e.sum(), rtol=1e-6)
    assert lam.shape == (3, 5) and torch.equal(lam[:, 0], lam[:, 4])
    uni = init_coefficients(scores, y, 5, LambdaOptions(init="uniform", layerwise=False))
    assert uni.shape == (3,) and torch.allclose(uni, torch.full((3,), 1 / 3))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="loss"):
        LambdaOptions(loss="hinge")
    with pytest.raises(ValueError, match="init"):
        LambdaOptions(init="random")


class Toy(nn.Module):
    """A two-layer scorer over 4 input features: enough to have layers and experts."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.out = nn.Linear(8, 10)

    def forward(self, x):
        return sigmoid_distribution(self.out(torch.tanh(self.body(x))))


def _toy_world(seed=0):
    """θ0 scores nothing in particular; expert i turns the score up with input feature i."""
    torch.manual_seed(seed)
    module = Toy()
    with torch.no_grad():
        module.out.weight.mul_(0.01)
    theta0 = {k: v.clone() for k, v in module.state_dict().items()}
    experts = {}
    up = torch.linspace(-1, 1, 10)
    for i in range(4):
        st = {k: v.clone() for k, v in theta0.items()}
        st["body.weight"] = theta0["body.weight"].clone()
        st["body.weight"][i] += 2.0 * torch.eye(4)[i]  # unit i now reads feature i strongly
        st["out.weight"] = theta0["out.weight"] + 1.5 * up[:, None] * torch.eye(8)[i][None, :]
        experts[f"s{i}"] = st
    return module, theta0, build_task_vectors(module, theta0, experts)


def _person(key, target_feature, k, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, 4, generator=g)
    y = 3 + x[:, target_feature]  # this person's taste is exactly source `target_feature`'s criterion
    scores = np.random.default_rng(seed).normal(size=(4, k))  # unused: these tests start from uniform λ
    return Person(key, x, y, scores, seed)


def test_known_answer_personalization_moves_lambda_toward_the_matching_source():
    module, theta0, tv = _toy_world()
    merged = MergedScorer(module, theta0, tv)
    cfg = LambdaOptions(steps=150, batch_size=32, lr=(5e-2, 5e-3), init="uniform")
    tmpl = template_tensor("five")
    for target in (1, 3):
        lam = personalize(merged, [_person("p", target, 40, seed=target)], tmpl, cfg, progress=False)[0]
        weight = lam.mean(dim=1)
        assert int(weight.argmax()) == target, weight
        x = torch.randn(200, 4, generator=torch.Generator().manual_seed(99))
        from aestimo.evaluation.metrics import srocc

        assert srocc(x[:, target].numpy(), predict(merged, x, lam, tmpl).numpy()) > 0.9


def test_batched_equals_looped():
    module, theta0, tv = _toy_world()
    merged = MergedScorer(module, theta0, tv)
    people = [_person(f"p{i}", i % 4, 12, seed=i) for i in range(3)]
    tmpl = template_tensor("five")
    for loss in ("rank", "mse"):
        cfg = LambdaOptions(steps=20, batch_size=8, loss=loss)
        looped = personalize(merged, people, tmpl, cfg, batched=False, progress=False)
        batched = personalize(merged, people, tmpl, cfg, batched=True, progress=False)
        torch.testing.assert_close(batched, looped, rtol=1e-4, atol=1e-5)


def test_layer_agnostic_learns_one_coefficient_per_source():
    module, theta0, tv = _toy_world()
    merged = MergedScorer(module, theta0, tv)
    lam = personalize(merged, [_person("p", 0, 20, 1)], template_tensor("five"), LambdaOptions(steps=5, layerwise=False), progress=False)
    assert lam.shape == (1, 4)


def _head_world(seed=0):
    """A Scorer with a real ScoreHead (hidden 8) and three random experts, for the head's dropout."""
    torch.manual_seed(seed)
    module = Scorer(nn.Sequential(nn.Linear(4, 6), nn.Tanh()), ScoreHead(6, hidden=8), channels_last=False)
    theta0 = {k: v.clone() for k, v in module.state_dict().items()}
    experts = {f"s{i}": {k: v + 0.5 * torch.randn_like(v) for k, v in theta0.items()} for i in range(3)}
    return MergedScorer(module, theta0, build_task_vectors(module, theta0, experts))


def test_head_dropout_is_seeded_and_batched_equals_looped():
    merged = _head_world()
    people = [_person(f"p{i}", i, 12, seed=i) for i in range(3)]
    for p in people:
        p.expert_scores = p.expert_scores[:3]
    tmpl = template_tensor("five")
    cfg = LambdaOptions(steps=15, batch_size=8, dropout=0.5)
    looped = personalize(merged, people, tmpl, cfg, batched=False, progress=False)
    again = personalize(merged, people, tmpl, cfg, batched=False, progress=False)
    batched = personalize(merged, people, tmpl, cfg, batched=True, progress=False)
    no_drop = personalize(merged, people, tmpl, LambdaOptions(steps=15, batch_size=8), batched=False, progress=False)
    assert torch.equal(looped, again)  # masks come from each person's seed
    torch.testing.assert_close(batched, looped, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(looped, no_drop, atol=1e-3)  # the masks do change the training
    # scoring never drops: predictions are deterministic
    x = torch.randn(5, 4)
    assert torch.equal(predict(merged, x, looped[0], tmpl), predict(merged, x, looped[0], tmpl))


def test_dropout_rate_must_be_below_one():
    with pytest.raises(ValueError, match="dropout"):
        LambdaOptions(dropout=1.0)


def test_bundle_meta_roundtrip(tmp_path):
    from aestimo.datasets import SafetensorsDataset

    ds = SafetensorsDataset(str(tmp_path / "x.safetensors"))
    ds.save(TensorBundle({"layerwise_rank/k10/r0/lambda": torch.ones(2, 3)}, {"sources": ["a", "b"]}))
    back = ds.load()
    assert back.meta == {"sources": ["a", "b"]} and torch.equal(back["layerwise_rank/k10/r0/lambda"], torch.ones(2, 3))
