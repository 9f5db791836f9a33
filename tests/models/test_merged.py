"""Task vectors and the merged forward: the merge identities of docs/architecture.md."""

import pytest
import torch

from aestimo.models.scorer import build_scorer
from aestimo.bundle import TensorBundle
from aestimo.models.inference import batch_slices
from aestimo.models.merged import MergedScorer, build_task_vectors, layer_agnostic, merge_state


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    scorer = build_scorer("tf_efficientnet_lite0", None, head_seed=0, allow_random=True).eval()
    theta0 = {k: v.clone() for k, v in scorer.state_dict().items()}
    params = dict(scorer.named_parameters())
    experts = {}
    for i, name in enumerate(["a", "b", "c"]):
        g = torch.Generator().manual_seed(i)
        experts[name] = {
            k: (v + 0.05 * torch.randn(v.shape, generator=g) if k in params else v.clone()) for k, v in theta0.items()
        }
    tv = build_task_vectors(scorer, theta0, experts)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    return scorer, theta0, experts, tv, x


def _plain(scorer, state, x):
    scorer.load_state_dict(state)
    with torch.no_grad():
        return scorer(x)


def test_one_hot_lambda_reproduces_each_expert(world):
    scorer, theta0, experts, tv, x = world
    merged = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv)
    n, L = merged.shape
    for i, name in enumerate(tv.meta["sources"]):
        lam = torch.zeros(n, L)
        lam[i] = 1.0
        with torch.no_grad():
            got = merged(x, lam)
        torch.testing.assert_close(got, _plain(scorer, experts[name], x), rtol=1e-4, atol=1e-5)


def test_zero_lambda_reproduces_theta0_and_layer_agnostic_broadcasts(world):
    scorer, theta0, experts, tv, x = world
    merged = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv)
    n, L = merged.shape
    with torch.no_grad():
        torch.testing.assert_close(merged(x, torch.zeros(n, L)), _plain(scorer, theta0, x), rtol=1e-4, atol=1e-5)
        lam = torch.tensor([0.2, 0.5, -0.1])
        torch.testing.assert_close(merged(x, lam), merged(x, lam[:, None].expand(n, L)))


def test_gradient_reaches_lambda_only_and_module_is_not_copied(world):
    _, theta0, _, tv, x = world
    module = build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True)
    merged = MergedScorer(module, theta0, tv)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    lam = torch.full(merged.shape, 1 / 3, requires_grad=True)
    merged(x, lam).sum().backward()
    assert lam.grad is not None and lam.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.parameters())
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])


def test_batched_equals_one_by_one(world):
    _, theta0, _, tv, x = world
    merged = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv)
    lam = torch.rand(2, *merged.shape, generator=torch.Generator().manual_seed(1))
    xs = torch.stack([x, x.flip(0)])
    with torch.no_grad():
        got = merged.batched(xs, lam)
        want = torch.stack([merged(xs[0], lam[0]), merged(xs[1], lam[1])])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_merged_state_dict_scores_like_the_merged_forward(world):
    scorer, theta0, _, tv, x = world
    merged = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv)
    lam = torch.rand(merged.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        state = merge_state(TensorBundle(dict(theta0)), tv, lam)
        torch.testing.assert_close(_plain(scorer, state, x), merged(x, lam), rtol=1e-4, atol=1e-5)


def test_task_vectors_shape_and_layer_agnostic_view(world):
    scorer, theta0, experts, tv, _ = world
    names = [n for n, _ in scorer.named_parameters()]
    assert tv.meta["names"] == names and tv.meta["sources"] == ["a", "b", "c"]
    for n in names:
        assert tv[n].shape == (3, *theta0[n].shape)
        torch.testing.assert_close(tv[n][1], experts["b"][n] - theta0[n])
    flat = layer_agnostic(tv)
    assert flat["a"].numel() == sum(theta0[n].numel() for n in names)


def test_changed_batchnorm_statistics_are_refused(world):
    scorer, theta0, experts, _, _ = world
    bad = {k: v.clone() for k, v in experts["a"].items()}
    key = next(k for k in bad if k.endswith("running_mean"))
    bad[key] += 1.0
    with pytest.raises(ValueError, match="batch-norm statistics"):
        build_task_vectors(scorer, theta0, {"a": bad})


@pytest.mark.parametrize("n,batch", [(0, 48), (1, 48), (48, 48), (49, 48), (97, 48), (161, 48), (10, 3)])
def test_batch_slices_cover_every_row_once_in_equal_batches(n, batch):
    parts = batch_slices(n, batch)
    rows = [i for part in parts for i in range(n)[part]]
    assert rows == list(range(n))
    sizes = [part.stop - part.start for part in parts]
    assert len(parts) == -(-n // batch)
    assert all(size <= batch for size in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_probs_in_batches_equal_one_pass(world):
    _, theta0, _, tv, x = world
    merged = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv, fold=False)
    lam = torch.rand(merged.shape, generator=torch.Generator().manual_seed(4))
    xs = torch.cat([x, x.flip(0), x[:3]])
    with torch.no_grad():
        want = merged(xs, lam)
    torch.testing.assert_close(merged.probs(xs, lam, batch=4), want, rtol=1e-5, atol=1e-6)
    assert merged.probs(xs[:0], lam).shape == (0, 10)


def test_bf16_scoring_is_close_to_fp32_and_fp32_is_untouched(world):
    _, theta0, _, tv, x = world
    lam = torch.rand((3, len(tv.meta["names"])), generator=torch.Generator().manual_seed(4))
    plain = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv, fold=False)
    fp32 = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv, fold=False, precision="fp32")
    bf16 = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv, fold=False, precision="bf16")
    want = plain.probs(x, lam)
    assert torch.equal(fp32.probs(x, lam), want)
    got = bf16.probs(x, lam)
    assert got.dtype == torch.float32 and not torch.equal(got, want)  # it did run in bf16
    torch.testing.assert_close(got, want, rtol=0, atol=2e-2)  # bin probabilities to ~2 decimals
