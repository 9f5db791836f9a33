"""Ceilings: rows that read what no deployable method may see, to show how far one could go.

* ``oracle`` (the noise ceiling): each person's noise-free utility (the synthetic
  world's hidden truth) as the prediction. On real data (no truth) it has no rows.
* ``mixing_ceiling``: the best linear mix of the experts' outputs *for the query*:
  least squares (with a bias, no penalty) of the person's query ratings on the
  query's expert scores, scored on those same images. It bounds what any affine
  mix of the experts' outputs (``output_mix``, ``zero_shot_ensemble``,
  ``single_expert``) can reach in linear correlation (PLCC); SROCC usually
  follows but is not guaranteed to. It needs only the ratings, so it runs on
  real data too.
"""

from __future__ import annotations

import numpy as np

from aestimo.personalization.registry import Context, Method, Query, State, Support, register


@register("oracle")
class Oracle(Method):
    ceiling = True
    needs_truth = True

    def fit(self, support: Support, ctx: Context) -> State:
        return {}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        if query.truth is None:
            raise ValueError("oracle: no hidden truth for these images (only the synthetic world has one)")
        return query.truth


def best_mix(expert_scores: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """The least-squares fit of ``ratings`` on ``[1, expert_scores.T]``: ``(n_experts + 1,)``, the bias first
    (the minimum-norm solution when the experts' scores are collinear on these images)."""
    design = np.column_stack([np.ones(expert_scores.shape[1]), np.asarray(expert_scores, dtype=np.float64).T])
    coef, *_ = np.linalg.lstsq(design, np.asarray(ratings, dtype=np.float64), rcond=None)
    return coef


@register("mixing_ceiling")
class MixingCeiling(Method):
    """The experts' outputs mixed by least squares on the person's query ratings (a ceiling: it reads them)."""

    ceiling = True

    def fit(self, support: Support, ctx: Context) -> State:
        return {}  # everything it learns comes from the query

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        if query.ratings is None:
            raise ValueError("mixing_ceiling: the query carries no ratings (Query.ratings is None)")
        ratings = np.asarray(query.ratings, dtype=np.float64)
        if ratings.shape != (query.expert_scores.shape[1],):
            raise ValueError(f"mixing_ceiling: {ratings.shape[0]} ratings for {query.expert_scores.shape[1]} query images")
        coef = best_mix(query.expert_scores, ratings)
        return coef[0] + coef[1:] @ np.asarray(query.expert_scores, dtype=np.float64)
