"""Score heads and residual adapters.

The scorer ends in ``Linear(embed, 512) -> GELU -> Dropout(0.5)
-> Linear(512, 10) -> Sigmoid -> dot with a 10-value template``.
:class:`ScoreHead` normalises the 10 sigmoid outputs to sum to one, so that

* the dot with the template is an *expectation* on the template scale (a
  score inside ``[template.min(), template.max()]``), and
* the same output serves EMD as a distribution over the 10 ordered bins.

The raw pre-sigmoid logits stay available (:meth:`ScoreHead.forward_with_logits`)
for a classification loss such as balanced CE.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ResidualAdapter", "ScoreHead", "init_linear_", "sigmoid_distribution"]


def sigmoid_distribution(logits: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``sigmoid(logits)`` normalised over the last dim to sum to one."""
    s = torch.sigmoid(logits)
    return s / s.sum(dim=-1, keepdim=True).clamp_min(eps)


def init_linear_(layer: nn.Linear, generator: torch.Generator | None = None) -> None:
    """PyTorch's default ``nn.Linear`` init, drawn from ``generator`` (reproducible)."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


class ScoreHead(nn.Module):
    """``Linear(embed, hidden) -> GELU -> Dropout -> Linear(hidden, n_bins) -> Sigmoid``, normalised.

    ``forward`` returns bin probabilities ``(B, n_bins)`` that sum to one.
    """

    def __init__(self, embed_dim: int, hidden: int = 512, dropout: float = 0.5, n_bins: int = 10):
        super().__init__()
        self.embed_dim, self.hidden, self.n_bins = embed_dim, hidden, n_bins
        self.fc1 = nn.Linear(embed_dim, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, n_bins)

    def logits(self, features: torch.Tensor, drop_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Raw pre-sigmoid outputs ``(B, n_bins)``.

        ``drop_mask`` ``(B, hidden)``, already scaled by ``1 / (1 - p)``, replaces
        the dropout layer by an explicit mask: dropout drawn from a caller's
        generator (reproducible, and the same inside and outside ``vmap``).
        """
        h = self.act(self.fc1(features))
        return self.fc2(self.drop(h) if drop_mask is None else h * drop_mask)

    def forward_with_logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logits(features)
        return sigmoid_distribution(logits), logits

    def parts(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(probs, logits, hidden)``: the hidden layer (after GELU, before dropout) is the
        representation a feature-level loss (FLSA) aligns: it moves in every training stage."""
        h = self.act(self.fc1(features))
        logits = self.fc2(self.drop(h))
        return sigmoid_distribution(logits), logits, h

    def forward(self, features: torch.Tensor, drop_mask: torch.Tensor | None = None) -> torch.Tensor:
        return sigmoid_distribution(self.logits(features, drop_mask))

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Re-initialise both layers; the same ``seed`` always gives the same weights."""
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        init_linear_(self.fc1, gen)
        init_linear_(self.fc2, gen)


class ResidualAdapter(nn.Module):
    """``x + up(GELU(down(x)))`` with ``down: D -> D/reduction``, ``up: D/reduction -> D``.

    ``up`` starts at zero, so a fresh adapter is the identity and every
    attribute head starts from the shared backbone feature.
    """

    def __init__(self, dim: int, reduction: int = 4):
        super().__init__()
        bottleneck = max(1, dim // reduction)
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        init_linear_(self.down, gen)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
