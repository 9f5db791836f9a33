"""Rating scales of the sources and their mapping onto the scorer's 10-bin templates.

The scorer predicts a 10-bin distribution and takes its expectation over a
template: ``1..10`` for 1–10 scales, ``0.5..5`` (step 0.5) for 1–5 scales. Every
other scale is mapped linearly onto one of these, and predictions
are mapped back onto the source's own scale for metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

TEMPLATES: dict[str, np.ndarray] = {
    "ten": np.arange(1, 11, dtype=np.float64),
    "five": np.arange(1, 11, dtype=np.float64) * 0.5,
}


@dataclass(frozen=True)
class Scale:
    """A source's label scale ``[lo, hi]`` and its linear map onto a template.

    ``target`` is the interval of the template that ``[lo, hi]`` maps onto:
    ``(1, 10)`` on the ten template, ``(1, 5)`` on the five template (so a 1–5
    score keeps its value; the 0.5 bin is only reachable by predictions).
    """

    lo: float
    hi: float
    template: str
    target: tuple[float, float]
    step: float | None = None

    @property
    def midpoint(self) -> float:
        return (self.lo + self.hi) / 2.0

    @property
    def template_values(self) -> np.ndarray:
        return TEMPLATES[self.template]

    def to_template(self, x):
        """Map scores on this scale onto the template scale (works on numpy, torch, polars)."""
        a, b = self.target
        return a + (x - self.lo) * ((b - a) / (self.hi - self.lo))

    def from_template(self, y):
        """Map template-scale values back onto this scale."""
        a, b = self.target
        return self.lo + (y - a) * ((self.hi - self.lo) / (b - a))


SCALES: dict[str, Scale] = {
    "ava": Scale(1, 10, "ten", (1, 10), step=1),
    "flickr_aes": Scale(1, 5, "five", (1, 5), step=1),
    "real_cur": Scale(1, 5, "five", (1, 5), step=1),
    "para": Scale(1, 5, "five", (1, 5), step=0.5),
    "koniq10k": Scale(1, 5, "five", (1, 5)),
    "spaq": Scale(0, 100, "ten", (1, 10)),
    "tad66k": Scale(0, 10, "ten", (1, 10)),
    "aadb": Scale(0, 1, "ten", (1, 10)),
    "eva": Scale(0, 10, "ten", (1, 10)),
    # A person's own ratings (`aestimo personalize`): any [lo, hi] maps onto the ten template's
    # 1..10 (user_scale); this entry is that template for the people personalized this way.
    "own": Scale(1, 10, "ten", (1, 10)),
}

#: The source name of the people personalized from their own ratings file (`aestimo personalize`).
USER_SOURCE = "own"

#: The scales a ratings file's scores are checked against when none is stated, smallest first.
COMMON_USER_SCALES: tuple[tuple[float, float], ...] = ((1, 5), (1, 10), (0, 10), (0, 100))


def user_scale(lo: float, hi: float) -> Scale:
    """A person's own rating scale ``[lo, hi]``, mapped linearly onto the ten template's 1..10
    (the template of :data:`USER_SOURCE`)."""
    if not lo < hi:
        raise ValueError(f"a rating scale needs its low end below its high end (got {lo:g}-{hi:g})")
    base = SCALES[USER_SOURCE]
    return Scale(float(lo), float(hi), base.template, base.target)


def infer_user_scale(scores) -> tuple[float, float] | None:
    """The smallest of :data:`COMMON_USER_SCALES` that holds every score; None when none does."""
    lo, hi = float(np.min(scores)), float(np.max(scores))
    return next(((a, b) for a, b in COMMON_USER_SCALES if a <= lo and hi <= b), None)


def histogram_to_template(bin_values: np.ndarray, counts: np.ndarray, scale: Scale) -> np.ndarray:
    """Place a vote histogram (rows = images) onto the 10 template bins and normalise it.

    ``bin_values`` are the score values of the histogram's bins on the source
    scale; each is mapped onto the template and added to the nearest template
    bin. Rows that sum to zero come back as NaN (no distribution).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim == 1:
        counts = counts[None, :]
    tvals = scale.template_values
    mapped = np.asarray(scale.to_template(np.asarray(bin_values, dtype=np.float64)))
    idx = np.abs(mapped[:, None] - tvals[None, :]).argmin(axis=1)
    out = np.zeros((counts.shape[0], len(tvals)))
    for j, t in enumerate(idx):
        out[:, t] += counts[:, j]
    total = out.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, out / total, np.nan)
    return out


def dist_matrix(dist: pl.Series) -> np.ndarray:
    """A list column of 10-bin histograms as an ``(N, 10)`` array, NaN rows where null."""
    out = np.full((len(dist), 10), np.nan)
    has = dist.is_not_null().to_numpy()
    if has.any():
        out[has] = np.stack(dist.filter(dist.is_not_null()).to_list())
    return out
