"""Batched, deterministic inference on cached images: backbone features and bin probabilities.

Every evaluation view is the centre crop (no flips, no random crops), so the
same image always gets the same score. The scorer runs with its batch norms
folded into its convolutions (:mod:`aestimo.models.folding`), in batches small
enough for the activations to stay in cache.
"""

from __future__ import annotations

import torch

from aestimo.data.images import center_view, to_float
from aestimo.models.folding import folded_copy
from aestimo.models.scorer import Scorer

#: images per batch and thread when one process scores on every thread: a 64-px EfficientNet-Lite
#: batch of 32 keeps its activations in cache (on one thread about 2x faster per image than 128)
THREAD_BATCH = 32
#: the most images per batch on one thread (a worker scoring a person's query images): 48, in
#: batches of equal size, is ~7 % faster per image than batches of 32 and a short last one
#: (bench/score_batch.py); larger batches fall out of cache again
SCORE_BATCH = 48


def _batch(batch: int | None) -> int:
    return batch or THREAD_BATCH * max(1, torch.get_num_threads())


def batch_slices(n: int, batch: int = SCORE_BATCH) -> list[slice]:
    """Rows ``0..n`` in the fewest batches of at most ``batch``, all of (nearly) the same size:
    a short last batch costs more per image than a full one."""
    count = -(-n // batch)
    edges = [i * n // count for i in range(count + 1)] if count else []
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


@torch.no_grad()
def embed(scorer: Scorer, pixels: torch.Tensor, crop: int, norm, batch: int | None = None) -> torch.Tensor:
    """Backbone features of the centre-crop view of each cached image, ``(N, D)``."""
    scorer, batch = folded_copy(scorer, (2, 3, crop, crop)), _batch(batch)
    out = []
    for i in range(0, len(pixels), batch):
        out.append(scorer.features(to_float(center_view(pixels[i : i + batch], crop), *norm)))
    return torch.cat(out) if out else torch.empty(0, scorer.embed_dim)


@torch.no_grad()
def predict(scorer: Scorer, pixels: torch.Tensor, crop: int, norm, batch: int | None = None) -> torch.Tensor:
    """Bin probabilities ``(N, 10)`` on the centre-crop view."""
    scorer, batch = folded_copy(scorer, (2, 3, crop, crop)), _batch(batch)
    out = [scorer(to_float(center_view(pixels[i : i + batch], crop), *norm)) for i in range(0, len(pixels), batch)]
    return torch.cat(out) if out else torch.empty(0, 10)
