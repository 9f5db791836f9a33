"""Adaptive probability distribution sharpening (APDS) and pseudo-labels (ELTA, ICML 2024).

A scorer's 10-bin distribution is sharpened with a per-image temperature
``τ_i = exp(−β |ŝ_i − mean|)``: ``p_i^(1/τ_i)``, renormalised. Predictions far
from the mean (the tails, which a long-tailed training set makes timid) are
sharpened most. A pseudo-label (the sharpened distribution and its expected
score) is kept where the sharpened maximum probability reaches ``t``.

``(β, t)`` is chosen by grid search: the pair whose kept pseudo-labels have
the lowest MAE against the true labels of a labelled **validation** subset,
among pairs that keep at least ``min_kept`` of it (a pair keeping three easy
images would otherwise win). Distances ``|ŝ − mean|`` are on the unit scale
(the template's range mapped to [0, 1]), so one grid serves every scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import torch
from pydantic import Field

from aestimo.options import Options
from aestimo.training.long_tail import unit_scores

__all__ = ["ApdsGrid", "PseudoLabels", "grid_search", "pseudo_label", "sharpen", "temperatures"]


class ApdsGrid(Options):
    """The (β, t) grid of the search and the least share of the validation images a pair must keep."""

    betas: list[float] = Field(default=[0.0, 2.0, 5.0, 10.0, 20.0], min_length=1)
    thresholds: list[float] = Field(default=[0.15, 0.2, 0.3, 0.5, 0.7], min_length=1)
    min_kept: float = Field(default=0.1, ge=0, le=1)


def temperatures(score: torch.Tensor, mean: float, beta: float, template: torch.Tensor) -> torch.Tensor:
    """``τ_i = exp(−β |ŝ_i − mean|)`` with the distance on the unit scale."""
    d = (unit_scores(score, template) - float(unit_scores(torch.tensor(mean), template))).abs()
    return torch.exp(-beta * d)


def sharpen(probs: torch.Tensor, template: torch.Tensor, mean: float, beta: float) -> torch.Tensor:
    """Each row ``p_i^(1/τ_i)`` renormalised (in log space: no underflow at small τ)."""
    tau = temperatures(probs @ template.to(probs.dtype), mean, beta, template.to(probs.dtype))
    return torch.softmax(probs.clamp_min(1e-30).log() / tau[:, None], dim=1)


@dataclass(frozen=True)
class PseudoLabels:
    """Sharpened distributions, their expected scores, and which are kept."""

    dist: torch.Tensor  # (N, 10)
    score: torch.Tensor  # (N,)
    keep: torch.Tensor  # (N,) bool

    def table(self, image_ids: Sequence[str], predicted: torch.Tensor) -> pl.DataFrame:
        return pl.DataFrame({
            "image_id": list(image_ids),
            "predicted": predicted.double().numpy(),
            "pseudo_label": self.score.double().numpy(),
            "confidence": self.dist.max(dim=1).values.double().numpy(),
            "kept": self.keep.numpy(),
            "dist": self.dist.double().numpy().tolist(),
        })

    @classmethod
    def from_table(cls, table: pl.DataFrame) -> PseudoLabels:
        """Back from :meth:`table` (rows in the table's order)."""
        dist = torch.tensor(table["dist"].to_list(), dtype=torch.float64).reshape(-1, 10)
        return cls(dist, torch.as_tensor(table["pseudo_label"].to_numpy().copy()), torch.as_tensor(table["kept"].to_numpy().copy()))


def pseudo_label(probs: torch.Tensor, template: torch.Tensor, mean: float, beta: float, t: float) -> PseudoLabels:
    """APDS pseudo-labels: sharpen at ``mean`` with ``β``, keep where the maximum probability ≥ ``t``."""
    template = template.to(probs.dtype)
    sharp = sharpen(probs, template, mean, beta)
    return PseudoLabels(sharp, sharp @ template, sharp.max(dim=1).values >= t)


def grid_search(
    probs: torch.Tensor, truth: torch.Tensor, template: torch.Tensor, mean: float, grid: ApdsGrid
) -> tuple[pl.DataFrame, tuple[float, float]]:
    """The MAE surface over (β, t) on a labelled validation subset, and the chosen pair.

    ``truth`` are the validation images' true scores (template scale). Pairs keeping less
    than ``grid.min_kept`` of the images have MAE ``inf``. Ties go to the pair keeping more.
    """
    if len(probs) == 0:
        raise ValueError("APDS grid search needs labelled validation images; got none")
    rows = []
    for beta in grid.betas:
        for t in grid.thresholds:
            pl_ = pseudo_label(probs, template, mean, beta, t)
            kept = float(pl_.keep.double().mean())
            err = (pl_.score - truth.to(pl_.score.dtype)).abs()[pl_.keep]
            mae = float(err.mean()) if len(err) and kept >= grid.min_kept else float("inf")
            rows.append({"beta": float(beta), "t": float(t), "mae": mae, "kept_fraction": kept})
    return _mark_best(pl.DataFrame(rows), f"APDS: no (beta, t) pair keeps {grid.min_kept:.0%} of the validation images; "
                      "lower the thresholds or min_kept in the parameters")


def mean_surface(surfaces: Sequence[pl.DataFrame]) -> tuple[pl.DataFrame, tuple[float, float]]:
    """Several surfaces (e.g. one per expert) averaged per (β, t), and the pair with the lowest mean MAE."""
    joined = (
        pl.concat([s.select("beta", "t", "mae", "kept_fraction") for s in surfaces])
        .group_by("beta", "t").agg(pl.col("mae").mean(), pl.col("kept_fraction").mean())
        .sort("beta", "t")
    )
    return _mark_best(joined, "APDS: no (beta, t) pair is usable for every expert; widen the grid")


def _mark_best(surface: pl.DataFrame, none_usable: str) -> tuple[pl.DataFrame, tuple[float, float]]:
    """The surface with its best pair marked ``chosen`` (lowest finite MAE, ties to the pair keeping
    more), and that pair; ``none_usable`` is the error when no MAE is finite."""
    finite = surface.filter(pl.col("mae").is_finite())
    if finite.height == 0:
        raise ValueError(none_usable)
    best = finite.sort(["mae", "kept_fraction"], descending=[False, True]).row(0, named=True)
    chosen = (pl.col("beta") == best["beta"]) & (pl.col("t") == best["t"])
    return surface.with_columns(chosen.alias("chosen")), (best["beta"], best["t"])

