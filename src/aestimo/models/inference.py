"""Batched, deterministic inference on cached images: backbone features and bin probabilities.

Every evaluation view is the centre crop (no flips, no random crops), so the
same image always gets the same score.
"""

from __future__ import annotations

import torch

from aestimo.data.images import center_view, to_float
from aestimo.models.scorer import Scorer


@torch.no_grad()
def embed(scorer: Scorer, pixels: torch.Tensor, crop: int, norm, batch: int = 128) -> torch.Tensor:
    """Backbone features of the centre-crop view of each cached image, ``(N, D)``."""
    scorer.eval()
    out = []
    for i in range(0, len(pixels), batch):
        out.append(scorer.features(to_float(center_view(pixels[i : i + batch], crop), *norm)))
    return torch.cat(out) if out else torch.empty(0, scorer.embed_dim)


@torch.no_grad()
def predict(scorer: Scorer, pixels: torch.Tensor, crop: int, norm, batch: int = 128) -> torch.Tensor:
    """Bin probabilities ``(N, 10)`` on the centre-crop view."""
    scorer.eval()
    out = [scorer(to_float(center_view(pixels[i : i + batch], crop), *norm)) for i in range(0, len(pixels), batch)]
    return torch.cat(out) if out else torch.empty(0, 10)
