"""Batched, deterministic inference on stored images: backbone features and bin probabilities.

Every evaluation view is the centre crop (no flips, no random crops), so the
same image always gets the same score. The scorer runs with its batch norms
folded into its convolutions where its architecture allows
(:mod:`aestimo.models.folding`), in batches small enough for the activations
to stay in cache, on the device it sits on: each batch of pixels moves there,
results come back to the CPU. ``precision`` (bf16 / fp16) runs the passes
under autocast; the default fp32 keeps every documented figure.
"""

from __future__ import annotations

import numpy as np
import torch

from aestimo import device as devices
from aestimo.data.images import center_view, to_float
from aestimo.data.loading import blocks
from aestimo.models.folding import folded_copy
from aestimo.models.scorer import Scorer

#: images per batch and thread when one process scores on every thread: a 64-px EfficientNet-Lite
#: batch of 32 keeps its activations in cache (on one thread about 2x faster per image than 128)
THREAD_BATCH = 32
#: the most images per batch on one thread (a worker scoring a person's query images): 48, in
#: batches of equal size, is ~7 % faster per image than batches of 32 and a short last one
#: (bench/score_batch.py); larger batches fall out of cache again
SCORE_BATCH = 48


#: images per batch on an accelerator
ACCELERATOR_BATCH = 256


def _batch(batch: int | None, device: torch.device | None = None) -> int:
    if batch:
        return batch
    if device is not None and device.type != "cpu":
        return ACCELERATOR_BATCH
    return THREAD_BATCH * max(1, torch.get_num_threads())


def batch_slices(n: int, batch: int = SCORE_BATCH) -> list[slice]:
    """Rows ``0..n`` in the fewest batches of at most ``batch``, all of (nearly) the same size:
    a short last batch costs more per image than a full one."""
    count = -(-n // batch)
    edges = [i * n // count for i in range(count + 1)] if count else []
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def _passes(fn, pixels, crop: int, norm, batch: int, dev: torch.device, precision: devices.Precision, workers: int = 0):
    """``fn`` on the centre-crop view of each batch of ``pixels`` (a tensor or lazy rows), on ``dev``,
    each result back on the CPU in float32; the batches read by ``workers`` DataLoader processes
    where that is more than 0."""
    for block in blocks(pixels, batch, workers, dev.type == "cuda"):
        x = devices.to(block, dev)
        with devices.autocast(dev, precision):
            out = fn(to_float(center_view(x, crop), *norm))
        yield out.float().cpu()


@torch.no_grad()
def embed(
    scorer: Scorer, pixels, crop: int, norm, batch: int | None = None, out: np.ndarray | None = None,
    precision: devices.Precision = "fp32", loader_workers: int = 0,
) -> torch.Tensor | None:
    """Backbone features of the centre-crop view of each stored image, ``(N, D)``; written into
    ``out`` (e.g. a mapped table, block by block) instead when given."""
    dev = devices.of(scorer)
    scorer, batch = folded_copy(scorer, (2, 3, crop, crop)), _batch(batch, dev)
    feats = _passes(scorer.features, pixels, crop, norm, batch, dev, precision, loader_workers)
    if out is not None:
        for i, f in zip(range(0, len(pixels), batch), feats):
            out[i : i + len(f)] = f.numpy()
        return None
    parts = list(feats)
    return torch.cat(parts) if parts else torch.empty(0, scorer.embed_dim)


@torch.no_grad()
def predict(
    scorer: Scorer, pixels, crop: int, norm, batch: int | None = None, precision: devices.Precision = "fp32",
    loader_workers: int = 0,
) -> torch.Tensor:
    """Bin probabilities ``(N, 10)`` on the centre-crop view."""
    dev = devices.of(scorer)
    scorer, batch = folded_copy(scorer, (2, 3, crop, crop)), _batch(batch, dev)
    parts = list(_passes(scorer, pixels, crop, norm, batch, dev, precision, loader_workers))
    return torch.cat(parts) if parts else torch.empty(0, 10)
