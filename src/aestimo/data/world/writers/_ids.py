"""Unique random ids, the building block of each format's file and person names."""

from __future__ import annotations

import numpy as np


def unique_strings(rng: np.random.Generator, n: int, make) -> list[str]:
    """``n`` distinct strings from ``make(rng)``, in the order drawn (repeats are drawn again)."""
    out, seen = [], set()
    while len(out) < n:
        s = make(rng)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
