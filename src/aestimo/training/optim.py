"""The optimizer of every loop that trains a model's weights (experts, heads, fine-tuning, the
field's models). λ learning steps one small tensor and keeps PyTorch's default AdamW.

AdamW with ``foreach=True``: on CPU PyTorch otherwise updates one tensor at a
time. The multi-tensor path gives the same numbers, bit for bit (tested), and
is 1.4-2.3x faster on a scoring head's few large tensors, where the optimizer
step was a third of a training step; on the whole scorer's 151 tensors it is
about as fast (0.91-0.97x; ``bench/optimizer_step.py``). The fused kernel is
faster still, but rounds differently.
"""

from __future__ import annotations

import torch


def adamw(params, lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
