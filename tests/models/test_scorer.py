"""Score head, scorer, batch-norm freezing and the multi-attribute scorer."""

import pytest
import torch
from safetensors.torch import save
from torch import nn

from aestimo.models import (
    MultiAttributeScorer,
    ResidualAdapter,
    ScoreHead,
    Scorer,
    build_scorer,
    expected_score,
    freeze_bn_stats,
    template_tensor,
)
from aestimo.models.backbone import create_backbone
from aestimo.data.scales import TEMPLATES


class TinyBackbone(nn.Module):
    """A small conv net with batch norm, standing in for a timm backbone."""

    num_features = 8

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1)


def test_score_head_shapes_and_normalisation():
    torch.manual_seed(0)
    head = ScoreHead(16).eval()
    assert [type(m) for m in head.children()] == [nn.Linear, nn.GELU, nn.Dropout, nn.Linear]
    assert head.fc1.out_features == 512 and head.fc2.out_features == 10 and head.drop.p == 0.5
    feats = torch.randn(5, 16)
    probs, logits = head.forward_with_logits(feats)
    assert probs.shape == logits.shape == (5, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(5))
    s = torch.sigmoid(logits)
    assert torch.allclose(probs, s / s.sum(-1, keepdim=True))
    assert torch.equal(head(feats), probs)


def test_expected_score_is_inside_template_range():
    probs = torch.softmax(torch.randn(4, 10), -1)
    for name in ("ten", "five"):
        t = TEMPLATES[name]
        score = expected_score(probs, name)
        assert score.shape == (4,)
        assert (score >= t.min()).all() and (score <= t.max()).all()
    onehot = torch.eye(10)[[0, 9]]
    assert expected_score(onehot, "five").tolist() == [0.5, 5.0]
    assert torch.equal(template_tensor("ten"), torch.arange(1, 11, dtype=torch.float32))


def test_head_init_is_reproducible():
    a, b, c = ScoreHead(16), ScoreHead(16), ScoreHead(16)
    a.reset_parameters(3)
    b.reset_parameters(3)
    c.reset_parameters(4)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
        assert not torch.equal(va, vc), k


def test_scorer_forward_score_and_param_names():
    model = Scorer(TinyBackbone(), ScoreHead(8)).head_init(0).eval()
    x = torch.randn(3, 3, 16, 16)
    probs = model(x)
    assert probs.shape == (3, 10)
    assert torch.allclose(model.score(x, "ten"), probs @ torch.arange(1.0, 11.0))
    assert all(k.split(".")[0] in {"backbone", "head"} for k in model.state_dict())
    # parameters stay contiguous: state dicts can be written with safetensors as they are
    save({k: v for k, v in model.state_dict().items()})


def test_channels_last_does_not_change_outputs():
    torch.manual_seed(0)
    model = Scorer(TinyBackbone(), ScoreHead(8), channels_last=False).eval()
    x = torch.randn(2, 3, 16, 16)
    ref = model(x)
    model.channels_last = True
    assert torch.allclose(model(x), ref, atol=1e-6)


def test_functional_call_with_replaced_params():
    model = Scorer(TinyBackbone(), ScoreHead(8)).head_init(0).eval()
    x = torch.randn(2, 3, 16, 16)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    params["head.fc2.bias"] = params["head.fc2.bias"] + torch.arange(10.0)
    out = torch.func.functional_call(model, params, (x,))
    assert not torch.allclose(out, model(x))
    assert torch.allclose(torch.func.functional_call(model, dict(model.named_parameters()), (x,)), model(x))


def test_freeze_bn_stats_keeps_running_stats_and_trains_affine():
    model = Scorer(TinyBackbone(), ScoreHead(8)).head_init(0)
    model.train()
    freeze_bn_stats(model)
    assert not model.backbone.bn.training and model.head.training
    before = {k: v.clone() for k, v in model.backbone.bn.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model.score(torch.randn(4, 3, 16, 16) * 3 + 1, "ten").sum()
    loss.backward()
    opt.step()
    after = model.backbone.bn.state_dict()
    for k in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(before[k], after[k]), k
    assert model.backbone.bn.weight.requires_grad
    assert not torch.equal(before["weight"], after["weight"])


def test_freeze_bn_stats_on_timm_batchnormact():
    model = create_backbone(weights=None, allow_random=True).train()
    freeze_bn_stats(model)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) > 40 and not any(m.training for m in bns)


def test_build_scorer_head_seed(tmp_path):
    a = build_scorer("tf_efficientnet_lite0", None, head_seed=7, allow_random=True)
    b = build_scorer("tf_efficientnet_lite0", None, head_seed=7, allow_random=True)
    assert a.embed_dim == 1280
    for k, v in a.head.state_dict().items():
        assert torch.equal(v, b.head.state_dict()[k]), k
    with pytest.raises(ValueError, match="allow_random"):
        build_scorer("tf_efficientnet_lite0", None, head_seed=7)


def test_residual_adapter_starts_as_identity():
    adapter = ResidualAdapter(16)
    assert adapter.down.out_features == 4
    x = torch.randn(3, 16)
    assert torch.equal(adapter(x), x)


def test_multi_attribute_scorer():
    attrs = ["overall", "color", "light"]
    model = MultiAttributeScorer(TinyBackbone(), attrs, embed_dim=8, n_scale_classes=5).head_init(1).eval()
    x = torch.randn(2, 3, 16, 16)
    probs = model(x)
    assert list(probs) == attrs
    assert all(p.shape == (2, 10) and torch.allclose(p.sum(-1), torch.ones(2)) for p in probs.values())
    probs2, logits, aux = model.forward_with_aux(x)
    assert set(logits) == set(aux) == set(attrs)
    assert all(a.shape == (2, 5) for a in aux.values())
    scores = model.score(x, "five")
    assert scores["color"].shape == (2,)
    prefixes = {k.split(".")[0] for k in model.state_dict()}
    assert prefixes == {"backbone", "adapters", "heads", "aux_heads"}
    # without aux heads
    plain = MultiAttributeScorer(TinyBackbone(), ["overall"])
    assert plain.aux_heads is None and plain.forward_with_aux(x)[2] == {}
    with pytest.raises(ValueError):
        MultiAttributeScorer(TinyBackbone(), ["a.b"])
