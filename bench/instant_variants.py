"""Variants of instant that the benches measure it against, not methods a run deploys.

* :class:`InstantPerPerson`: the linearization at each person's own λ0 instead of one shared point
  (a forward and backward pass per support image per run);
* :class:`InstantLinearScoring`: the query scored by the linear model instead of the exact merged one
  (the saved λ is the same).

Both override the hooks :class:`aestimo.personalization.methods.instant.Instant` offers
(:meth:`~Instant.support_features`, :meth:`~Instant.predict`); neither is registered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aestimo.personalization.methods.instant import Instant, features_for
from aestimo.personalization.methods.linearized import linear_scores, score_features
from aestimo.personalization.registry import Context, Query, State, Support


class InstantPerPerson(Instant):
    """Instant expanded at each person's λ0: no shared features, one backward pass per support image and run."""

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        pass

    def cover(self, rows_by_source, ctx: Context) -> None:
        pass

    def support_features(self, support: Support, init: torch.Tensor, ctx: Context):
        n, L = ctx.merged.shape
        at = init if init.dim() == 2 else init[:, None].expand(n, L).contiguous()
        base, phi = score_features(ctx.merged, ctx.images(support.rows), at, ctx.template(support.source), self.options.feature_batch)
        return at, base, phi


class InstantLinearScoring(Instant):
    """Instant whose queries are scored by the linear model at the shared point (their features computed in ``prepare``)."""

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        super().prepare(supports, queries, ctx)
        rows: dict[str, list[torch.Tensor]] = {}
        for q in queries:
            rows.setdefault(q.source, []).append(q.rows)
        features_for(ctx, self._linear(ctx).at, {src: torch.cat(r) for src, r in rows.items()}, self.options.feature_batch)

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        lin = self._linear(ctx)
        base, phi = lin.take(query.rows)
        return linear_scores(base, phi, lin.at, state["lambda"]).numpy()
