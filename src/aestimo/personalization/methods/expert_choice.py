"""Baselines that use the experts as they are, choosing or averaging their outputs.

* ``zero_shot_ensemble``: the mean of the experts' scores (nothing learned);
* ``single_expert``: one expert alone (``expert: <source>``; left unset, one
  row per expert, named ``<entry>_<expert>``);
* ``best_expert_on_support``: the expert whose scores rank the person's k
  support images best (SROCC), a real baseline a few-shot method must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aestimo.evaluation import metrics
from aestimo.options import Options
from aestimo.personalization.registry import Context, Method, Query, State, Support, register


@register("zero_shot_ensemble")
class ZeroShotEnsemble(Method):
    """The mean of every expert's score: the zero-shot baseline of the papers."""

    reference = True

    def fit(self, support: Support, ctx: Context) -> State:
        return {}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        return query.expert_scores.mean(axis=0)


@register("single_expert")
class SingleExpert(Method):
    """One expert's zero-shot score."""

    detail_variants = True  # one row per expert: tabled, not in the report's main views

    class Options(Options):
        expert: str | None = None  # None: one row per expert

    def fit(self, support: Support, ctx: Context) -> State:
        return {}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        if self.options.expert not in ctx.experts:
            raise KeyError(f"single_expert: no expert '{self.options.expert}'; experts are {ctx.experts}")
        return query.expert_scores[ctx.experts.index(self.options.expert)]

    @classmethod
    def variants(cls, name: str, options: Options, experts: Sequence[str]) -> dict[str, Options]:
        if options.expert is not None:
            return {name: options}
        return {f"{name}_{e}": options.model_copy(update={"expert": e}) for e in experts}


@register("best_expert_on_support")
class BestExpertOnSupport(Method):
    """The expert with the highest SROCC on the person's support images (first one on a tie;
    an undefined SROCC, e.g. all support scores equal, counts as no agreement)."""

    def fit(self, support: Support, ctx: Context) -> State:
        r = np.array([metrics.srocc(support.y.numpy(), s) for s in support.expert_scores], dtype=np.float64)
        best = int(np.argmax(np.nan_to_num(r, nan=-np.inf)))
        return {"expert": torch.tensor([best])}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        return query.expert_scores[int(state["expert"][0])]
