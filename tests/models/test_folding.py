"""Batch-norm folding: the folded model scores as the plain one, gradients included, and it declines
when the module's order would fold the wrong pairs."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from aestimo.bundle import TensorBundle
from aestimo.models.folding import BatchNormFolding, folded_copy
from aestimo.models.inference import predict
from aestimo.models.merged import MergedScorer, build_task_vectors
from aestimo.models.scorer import build_scorer


def _scorer_with_statistics(seed: int = 0):
    """A random EfficientNet-Lite scorer whose batch norms have non-trivial statistics and affine weights."""
    torch.manual_seed(seed)
    scorer = build_scorer("tf_efficientnet_lite0", None, head_seed=seed, allow_random=True).eval()
    g = torch.Generator().manual_seed(seed)
    for mod in scorer.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(0.2 * torch.randn(c, generator=g))
            mod.running_var.copy_(0.5 + torch.rand(c, generator=g))
            with torch.no_grad():
                mod.weight.copy_(1 + 0.3 * torch.randn(c, generator=g))
                mod.bias.copy_(0.1 * torch.randn(c, generator=g))
    return scorer


@pytest.fixture(scope="module")
def scorer():
    return _scorer_with_statistics()


def test_folded_copy_scores_like_the_plain_scorer(scorer):
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    folded = folded_copy(scorer, (2, 3, 32, 32))
    assert folded is not scorer
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), scorer(x), rtol=1e-4, atol=1e-5)
    # the plain scorer is untouched (still has its batch norms and its outputs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in scorer.modules()) == len(BatchNormFolding.of(scorer).pairs)


def test_inference_predict_is_unchanged_by_folding_and_batch_size(scorer):
    pixels = torch.randint(0, 256, (7, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    norm = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    got = predict(scorer, pixels, 32, norm, batch=3)
    from aestimo.data.images import center_view, to_float

    with torch.no_grad():
        want = scorer(to_float(center_view(pixels, 32), *norm))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_folding_is_differentiable_like_the_plain_forward(scorer):
    """The gradient with respect to a batch norm's weight reaches it through the folded conv weight."""
    folding = BatchNormFolding.of(scorer, (2, 3, 32, 32))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    weights = {**{k: v.detach().clone() for k, v in scorer.named_parameters()}, **dict(scorer.named_buffers())}
    bn_weight = f"{folding.pairs[3][1]}.weight"
    plain = {k: v.requires_grad_(k == bn_weight) if v.is_floating_point() else v for k, v in weights.items()}
    g_plain = torch.autograd.grad(functional_call(scorer, plain, (x,)).sum(), plain[bn_weight])[0]
    folded_in = {k: v.detach().clone().requires_grad_(k == bn_weight) if v.is_floating_point() else v for k, v in weights.items()}
    g_folded = torch.autograd.grad(functional_call(folding.module, folding.fold(folded_in), (x,)).sum(), folded_in[bn_weight])[0]
    torch.testing.assert_close(g_folded, g_plain, rtol=1e-3, atol=1e-6)


class _MisleadingOrder(nn.Module):
    """A conv registered before a batch norm that the forward applies *before* it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv(self.bn(x))


def test_folding_declines_a_module_whose_order_misleads_it():
    torch.manual_seed(0)
    module = _MisleadingOrder().eval()
    module.bn.running_mean.fill_(0.7)
    module.bn.running_var.fill_(2.0)
    assert BatchNormFolding.of(module) is not None  # without the probe it would (wrongly) fold
    assert BatchNormFolding.of(module, (2, 4, 8, 8)) is None
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded_copy(module, (2, 4, 8, 8))(x), module(x))


def test_merged_scorer_scores_and_gradients_agree_folded_and_plain():
    base = _scorer_with_statistics(4)
    theta0 = {k: v.clone() for k, v in base.state_dict().items()}
    params = dict(base.named_parameters())
    experts = {}
    for i, name in enumerate(["a", "b"]):
        g = torch.Generator().manual_seed(10 + i)
        experts[name] = {k: (v + 0.05 * torch.randn(v.shape, generator=g) if k in params else v.clone()) for k, v in theta0.items()}
    tv: TensorBundle = build_task_vectors(base, theta0, experts)
    folded = MergedScorer(_scorer_with_statistics(4), theta0, tv, probe_shape=(2, 3, 32, 32))
    plain = MergedScorer(_scorer_with_statistics(4), theta0, tv, fold=False)
    assert folded.folding is not None and plain.folding is None
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    lam = torch.rand(folded.shape, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(folded.probs(x, lam, batch=4), plain.probs(x, lam), rtol=1e-4, atol=1e-5)
    grads = []
    for merged in (folded, plain):
        lam_ = lam.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(merged(x, lam_)[:, -1].sum(), lam_)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("size", [32, 33, 40])
def test_static_same_padding_equals_timms_same_convolution_at_its_size(scorer, size):
    """Even sizes pad one more pixel after than before (the kernel grows by one), odd ones may not."""
    folding = BatchNormFolding.of(scorer, (2, 3, size, size))
    assert folding is not None
    from aestimo.models.folding import StaticSameConv2d
    from timm.layers import Conv2dSame

    assert not any(isinstance(m, Conv2dSame) and not isinstance(m, StaticSameConv2d) for m in folding.module.modules())
    assert len(folding.widened) > 0 if size % 2 == 0 else True
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(size))
    weights = {**dict(scorer.named_parameters()), **dict(scorer.named_buffers())}
    with torch.no_grad():
        torch.testing.assert_close(functional_call(folding.module, folding.fold(weights), (x,)), scorer(x), rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match="built for"):
            functional_call(folding.module, folding.fold(weights), (torch.randn(1, 3, size + 8, size + 8),))
