"""ELTA's training modules: TFA's sampling probabilities and mixing weights, FLSA's matrices."""

import math

import pytest
import torch

from aestimo.training.data import Labels
from aestimo.training.long_tail import (
    LongTailOptions,
    anchor_probabilities,
    flsa_loss,
    label_similarity,
    mix_pairs,
    partner_probabilities,
    tail_mixup,
)

TEMPLATE = torch.arange(1.0, 11.0)  # a 1-10 scale: unit scores are (s - 1) / 9


def test_anchor_probabilities_favour_scores_far_from_the_mean():
    s = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    e = math.exp(0.5 / 0.2)  # |mean - s| / tau1 = 2.5 for both ends, 0 for the middle
    assert anchor_probabilities(s, 0.2).tolist() == pytest.approx([e / (2 * e + 1), 1 / (2 * e + 1), e / (2 * e + 1)])


def test_partner_probabilities_favour_close_scores_and_never_the_anchor():
    s = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    p = partner_probabilities(s, 4.0)
    # anchor 0: distances 0.5 and 1.0 -> logits 8 and 4
    assert p[0].tolist() == pytest.approx([0.0, math.exp(8) / (math.exp(8) + math.exp(4)), math.exp(4) / (math.exp(8) + math.exp(4))])
    assert p[1, 0] == pytest.approx(0.5) and p[1, 2] == pytest.approx(0.5)  # equidistant partners
    assert torch.diagonal(p).abs().max() == 0
    # equal scores: the distance is floored, not divided by zero
    tied = partner_probabilities(torch.tensor([0.3, 0.3, 0.9], dtype=torch.float64), 4.0)
    assert torch.isfinite(tied).all() and tied[0, 1] == pytest.approx(1.0)


def test_mixing_weight_is_the_anchor_share_of_both_anchor_probabilities():
    s = torch.tensor([0.0, 0.5, 1.0])
    i, j, lam = mix_pairs(s, 200, 0.2, 4.0, torch.Generator().manual_seed(0))
    p = anchor_probabilities(s.double(), 0.2)
    assert (i != j).all()
    assert lam.double().tolist() == pytest.approx((p[i] / (p[i] + p[j])).tolist(), rel=1e-6)
    e = math.exp(2.5)
    ends = (i != 1) & (j == 1)  # an end anchored with the middle partner: lam = e / (e + 1)
    assert ends.any() and lam[ends].double().tolist() == pytest.approx([e / (e + 1)] * int(ends.sum()), rel=1e-6)
    assert (i != 1).float().mean() > 0.8  # the ends carry 2e / (2e + 1) = 0.96 of the anchor mass


def test_tail_mixup_mixes_features_scores_and_histograms_with_one_weight():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    dist = torch.eye(10)[[0, 4, 9]]
    dist[1] = float("nan")  # the middle image has no histogram
    labels = Labels(torch.tensor([1.0, 5.5, 10.0]), dist)
    opts = LongTailOptions(tfa=True, tfa_ratio=2.0)
    out_f, out_y = tail_mixup(feats, labels, TEMPLATE, opts, torch.Generator().manual_seed(1))
    assert out_f.shape == (9, 2) and torch.equal(out_f[:3], feats)  # real samples first, 6 mixed ones appended
    i, j, lam = mix_pairs((labels.score - 1) / 9, 6, 0.2, 4.0, torch.Generator().manual_seed(1))
    w = lam[:, None]
    assert torch.allclose(out_f[3:], w * feats[i] + (1 - w) * feats[j])
    assert torch.allclose(out_y.score[3:], lam * labels.score[i] + (1 - lam) * labels.score[j])
    no_hist = (i == 1) | (j == 1)
    assert torch.isnan(out_y.dist[3:][no_hist]).all() and torch.isfinite(out_y.dist[3:][~no_hist]).all()


def test_label_similarity_and_flsa_against_hand_computed_matrices():
    s = torch.tensor([1.0, 2.0, 3.0])
    assert label_similarity(s).tolist() == [[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]]
    assert label_similarity(torch.tensor([4.0, 4.0])).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)  # cos between an axis and the diagonal
    cos = [[1, 0, c], [0, 1, c], [c, c, 1]]
    sim = [[1, 0.5, 0], [0.5, 1, 0.5], [0, 0.5, 1]]
    want = sum((cos[a][b] - sim[a][b]) ** 2 for a in range(3) for b in range(3)) / 9
    assert float(flsa_loss(f, s)) == pytest.approx(want)
    aligned = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # equal scores and equal features: nothing to align
    assert float(flsa_loss(aligned, torch.tensor([3.0, 3.0]))) == pytest.approx(0.0)


def test_flsa_gradient_moves_features_toward_the_label_similarity():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)  # orthogonal, but their labels are close
    s = torch.tensor([5.0, 5.1, 9.0])
    feats = torch.cat([f, torch.tensor([[-1.0, 0.2]])])
    before = float(flsa_loss(feats, s).detach())
    flsa_loss(feats, s).backward()
    with torch.no_grad():
        f2 = f - 0.1 * f.grad
    assert float(flsa_loss(torch.cat([f2, torch.tensor([[-1.0, 0.2]])]), s).detach()) < before
