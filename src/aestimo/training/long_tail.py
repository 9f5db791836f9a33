"""ELTA's training modules against the long tail (Zhou et al., ICML 2024): TFA and FLSA.

Aesthetic ratings crowd the middle of the scale, so a scorer learns to answer
"average". Two training-time modules push back:

* **Tail feature augmentation (TFA)**: mixup on backbone features, not pixels.
  An anchor ``i`` is drawn with ``P(i) ∝ exp(|mean − s_i| / τ1)`` (scores far
  from the batch mean favoured), a partner ``j ≠ i`` with
  ``P(j | i) ∝ exp(τ2 / |s_i − s_j|)`` (close scores favoured), and both
  features and labels (score and vote distribution) are mixed with
  ``λ = P(i) / (P(i) + P(j))``. Mixed samples join the batch.
* **Feature–label similarity alignment (FLSA)**: the MSE between the batch's
  feature cosine-similarity matrix and the label similarity
  ``1 − |s_i − s_j| / (max s − min s)``.

Scores enter both on a unit scale (the template's range mapped to [0, 1]), so
τ1 and τ2 mean the same on a 1–5 and on a 1–10 scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from aestimo.options import Options
from aestimo.training.data import Labels

__all__ = ["LongTailOptions", "anchor_probabilities", "flsa_loss", "label_similarity", "mix_pairs", "partner_probabilities",
           "tail_mixup"]


class LongTailOptions(Options):
    """TFA and FLSA switches for a training stage (both off: plain training)."""

    tfa: bool = False
    tau1: float = Field(default=0.2, gt=0)
    tau2: float = Field(default=4.0, gt=0)
    tfa_ratio: float = Field(default=0.5, gt=0)  # mixed samples per real sample in a batch
    flsa: float = Field(default=0.0, ge=0)  # weight of the FLSA term (0 = off)

    @property
    def active(self) -> bool:
        return self.tfa or self.flsa > 0


def unit_scores(score: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Scores mapped from the template's range to [0, 1]."""
    lo, hi = float(template.min()), float(template.max())
    return (score - lo) / max(hi - lo, 1e-12)


def anchor_probabilities(s: torch.Tensor, tau1: float) -> torch.Tensor:
    """``P(i) ∝ exp(|mean(s) − s_i| / τ1)`` over the batch (a softmax: no overflow)."""
    return torch.softmax((s - s.mean()).abs() / tau1, dim=0)


def partner_probabilities(s: torch.Tensor, tau2: float, eps: float = 1e-6) -> torch.Tensor:
    """``P(j | i) ∝ exp(τ2 / |s_i − s_j|)`` for ``j ≠ i`` (rows: anchors). Distances are floored at
    ``eps`` (equal scores are the closest partners, not a division by zero); a one-sample batch pairs
    the sample with itself."""
    n = len(s)
    if n == 1:
        return torch.ones(1, 1, dtype=s.dtype, device=s.device)
    logits = tau2 / (s[:, None] - s[None, :]).abs().clamp_min(eps)
    logits = logits.masked_fill(torch.eye(n, dtype=torch.bool, device=s.device), -math.inf)
    return torch.softmax(logits, dim=1)


def mix_pairs(s: torch.Tensor, n_mix: int, tau1: float, tau2: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_mix`` (anchor, partner, λ) triples drawn from a batch of unit-scale scores ``s``."""
    p = anchor_probabilities(s.double(), tau1)
    i = torch.multinomial(p, n_mix, replacement=True, generator=generator)
    cond = partner_probabilities(s.double(), tau2)
    j = torch.multinomial(cond[i], 1, generator=generator).squeeze(1)
    lam = p[i] / (p[i] + p[j])
    return i, j, lam.float()


def tail_mixup(
    features: torch.Tensor, labels: Labels, template: torch.Tensor, options: LongTailOptions, generator: torch.Generator
) -> tuple[torch.Tensor, Labels]:
    """The batch with its TFA samples appended: ``(features', labels')``, real samples first.

    A mixed vote distribution is NaN (no histogram) where either parent has none, so the
    loss falls back to the score's MSE for it, as for any sample without a histogram.
    """
    n_mix = max(1, round(options.tfa_ratio * len(features)))
    # the pairs are drawn where the generator lives (the CPU), so every device draws the same ones
    s = unit_scores(labels.score, template).to(generator.device)
    i, j, lam = (t.to(features.device) for t in mix_pairs(s, n_mix, options.tau1, options.tau2, generator))
    w = lam[:, None]
    # index_select, not features[i]: the same values, but its backward adds an anchor drawn twice in
    # index order, where advanced indexing's adds them in whatever order two threads reach them
    feats = w * features.index_select(0, i) + (1 - w) * features.index_select(0, j)
    score = lam * labels.score[i] + (1 - lam) * labels.score[j]
    dist = w * labels.dist[i] + (1 - w) * labels.dist[j]
    return torch.cat([features, feats]), Labels(torch.cat([labels.score, score]), torch.cat([labels.dist, dist]))


def label_similarity(s: torch.Tensor) -> torch.Tensor:
    """``1 − |s_i − s_j| / (max s − min s)``; all ones when every score is equal."""
    span = (s.max() - s.min()).clamp_min(1e-12)
    return 1 - (s[:, None] - s[None, :]).abs() / span


def flsa_loss(features: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """MSE between the features' cosine-similarity matrix and the label similarity."""
    f = F.normalize(features, dim=1)
    return (f @ f.T - label_similarity(score.to(f.dtype))).pow(2).mean()
