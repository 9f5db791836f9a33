"""Scoring many images with two batch sizes: small batches where the maps are large, large ones where they are small.

On one thread an EfficientNet-Lite at 64 px is fastest per image in batches of
about 48 while its maps are 32×32 and 16×16: larger batches push the
activations out of cache. From 8×8 on, its layers are small matrix products
(a few rows per image) that run faster the more rows they get, so one batch of
48 leaves them slow. :class:`StagedScorer` runs the early stages in batches of
``front_batch`` images, stacks their outputs, and runs the rest in batches of
up to ``tail_batch`` (``bench/score_batch.py`` measures it). Each image's
numbers are its own in either order; only the rounding of the late layers'
matrix products can change with the batch (~1e-8 in the bin probabilities).

It shares the scorer's submodules under the same names (``backbone.*``,
``head.*``), so ``torch.func.functional_call`` runs it on the same weight
dictionary as the scorer itself (the merged scorer's weights at any λ).
"""

from __future__ import annotations

import torch
from torch import nn

from aestimo.models.folding import module_device
from aestimo.models.inference import SCORE_BATCH, batch_slices

#: the most images per batch in the stages whose maps are at most ``TAIL_AREA`` pixels
TAIL_BATCH = 160
#: the stages whose input map has at most this many pixels run in the large batches (8×8)
TAIL_AREA = 64

_PARTS = ("conv_stem", "bn1", "blocks", "conv_head", "bn2")


def _block_input_areas(backbone: nn.Module, input_shape: tuple[int, ...]) -> list[int]:
    """The spatial area of each block's input on an ``input_shape`` forward."""
    areas: list[int] = []
    hooks = [b.register_forward_pre_hook(lambda _m, args: areas.append(args[0].shape[-2] * args[0].shape[-1]))
             for b in backbone.blocks]
    try:
        with torch.no_grad():
            backbone(torch.zeros(input_shape, device=module_device(backbone)).contiguous(memory_format=torch.channels_last))
    finally:
        for h in hooks:
            h.remove()
    return areas


class StagedScorer(nn.Module):
    """A scorer (``backbone`` with timm's EfficientNet layout, then ``head``) run in two batch sizes."""

    def __init__(self, scorer: nn.Module, split: int, front_batch: int = SCORE_BATCH, tail_batch: int = TAIL_BATCH):
        super().__init__()
        self.backbone, self.head = scorer.backbone, scorer.head
        self.channels_last = getattr(scorer, "channels_last", True)
        self.split, self.front_batch, self.tail_batch = split, front_batch, tail_batch

    @classmethod
    def of(cls, scorer: nn.Module, input_shape: tuple[int, ...], front_batch: int = SCORE_BATCH,
           tail_batch: int = TAIL_BATCH) -> StagedScorer | None:
        """The staged view of ``scorer`` for ``input_shape`` inputs, or None when its backbone is not
        laid out as timm's EfficientNets are, or when no block's input is small enough to gain."""
        backbone = getattr(scorer, "backbone", None)
        if backbone is None or not hasattr(scorer, "head") or not all(hasattr(backbone, p) for p in _PARTS):
            return None
        if not isinstance(backbone.blocks, nn.Sequential) or not hasattr(backbone, "forward_head"):
            return None
        areas = _block_input_areas(backbone, input_shape)
        split = next((i for i, a in enumerate(areas) if a <= TAIL_AREA), None)
        if not split:  # None (every map is large) or 0 (every map is small): one batch size is as good
            return None
        staged = cls(scorer, split, front_batch, tail_batch)
        return staged if staged.reproduces(scorer, input_shape) else None

    def _front(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.bn1(b.conv_stem(x))
        for block in b.blocks[: self.split]:
            x = block(x)
        return x

    def _tail(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        for block in b.blocks[self.split :]:
            x = block(x)
        return self.head(b.forward_head(b.bn2(b.conv_head(x))))

    def forward(self, x: torch.Tensor, front_batch: int | None = None) -> torch.Tensor:
        """Bin probabilities ``(B, n_bins)`` of ``B >= 1`` images, as the scorer's forward gives them."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        h = torch.cat([self._front(x[part]) for part in batch_slices(len(x), front_batch or self.front_batch)])
        return torch.cat([self._tail(h[part]) for part in batch_slices(len(h), self.tail_batch)])

    def reproduces(self, scorer: nn.Module, input_shape: tuple[int, ...], atol: float = 1e-5) -> bool:
        """Whether it gives ``scorer``'s outputs (its own weights) on a fixed random probe."""
        x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0)).to(module_device(scorer))
        with torch.no_grad():
            return bool(torch.allclose(self(x, front_batch=max(1, len(x) // 2)), scorer(x), atol=atol, rtol=1e-4))
