"""Scoring in two batch sizes (models/staged.py): the same outputs as one pass, the split where the maps are small."""

import pytest
import torch
from torch import nn

from aestimo.models.merged import MergedScorer, build_task_vectors
from aestimo.models.scorer import Scorer, build_scorer
from aestimo.models.head import ScoreHead
from aestimo.models.staged import TAIL_AREA, StagedScorer


@pytest.fixture(scope="module")
def scorer():
    torch.manual_seed(0)
    return build_scorer("tf_efficientnet_lite0", None, head_seed=0, allow_random=True).eval()


def _images(n: int, size: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [32, 64])
def test_split_is_the_first_block_whose_input_is_small(scorer, size):
    staged = StagedScorer.of(scorer, (2, 3, size, size))
    areas = []
    hooks = [b.register_forward_pre_hook(lambda _m, a: areas.append(a[0].shape[-2] * a[0].shape[-1])) for b in scorer.backbone.blocks]
    with torch.no_grad():
        scorer(_images(1, size))
    for h in hooks:
        h.remove()
    assert staged is not None
    assert areas[staged.split] <= TAIL_AREA < areas[staged.split - 1]


@pytest.mark.parametrize("n,front,tail", [(1, 4, 6), (13, 4, 6), (13, 48, 160), (40, 7, 9)])
def test_staged_scores_equal_the_scorer_in_one_pass(scorer, n, front, tail):
    staged = StagedScorer.of(scorer, (2, 3, 64, 64), front_batch=front, tail_batch=tail)
    x = _images(n, 64)
    with torch.no_grad():
        torch.testing.assert_close(staged(x), scorer(x), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(staged(x, front_batch=3), scorer(x), rtol=1e-4, atol=1e-6)


def test_a_backbone_of_another_layout_is_scored_in_one_batch_size():
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert StagedScorer.of(Scorer(backbone, ScoreHead(8)), (2, 3, 64, 64)) is None


def test_merged_scorer_scores_many_images_staged_and_as_one_pass(scorer):
    theta0 = {k: v.clone() for k, v in scorer.state_dict().items()}
    params = dict(scorer.named_parameters())
    experts = {s: {k: (v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(i)) if k in params else v.clone())
                   for k, v in theta0.items()} for i, s in enumerate(["a", "b"])}
    tv = build_task_vectors(scorer, theta0, experts)
    merged = MergedScorer(build_scorer("tf_efficientnet_lite0", None, 0, allow_random=True), theta0, tv, probe_shape=(2, 3, 64, 64))
    assert merged.staged is not None
    lam = torch.rand(merged.shape, generator=torch.Generator().manual_seed(4))
    x = _images(50, 64)
    with torch.no_grad():
        want = merged(x, lam)
    torch.testing.assert_close(merged.probs(x, lam, batch=8), want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(merged.probs(x, lam), want, rtol=1e-4, atol=1e-6)
