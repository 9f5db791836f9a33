"""The noise ceiling: each person's noise-free utility (the synthetic world's hidden truth) as the
prediction. It reads hidden information, so it is a ceiling, never a method to deploy; on real data
(no truth) it has no rows."""

from __future__ import annotations

import numpy as np

from aestimo.personalization.registry import Context, Method, Query, State, Support, register


@register("oracle")
class Oracle(Method):
    ceiling = True

    def fit(self, support: Support, ctx: Context) -> State:
        return {}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        if query.truth is None:
            raise ValueError("oracle: no hidden truth for these images (only the synthetic world has one)")
        return query.truth
