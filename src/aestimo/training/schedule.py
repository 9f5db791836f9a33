"""The learning-rate schedule every training loop here uses."""

from __future__ import annotations

import math


def cosine_lr(step: int, total: int, start: float, end: float) -> float:
    """Cosine decay from ``start`` (step 0) to ``end`` (step ``total``)."""
    t = min(step, total) / max(total, 1)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t))
