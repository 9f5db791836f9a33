"""Instant personalization: λ from the merged scorer linearized around an expansion point.

The exact method (:mod:`~aestimo.personalization.methods.task_vectors`) takes gradient
steps through the whole merged network for every person. Here each image's
score is linear in λ (:mod:`~aestimo.personalization.methods.linearized`): its
features ``φ(x)`` are computed **once per image**, at an expansion point shared
by every person and repeat that rates it (``expand_at: uniform`` = 1/n, or
``mean_init`` = the mean of the planned people's initialisations), in
:meth:`Instant.prepare`. A person's λ then solves a small convex problem
over those features, to convergence (Newton's method, milliseconds;
:mod:`~aestimo.personalization.methods.linear_problem`):

    min_λ  loss(base + ⟨λ − λe, φ⟩, y) + (l2 / k) · ‖λ − λ0‖²

with the same Bradley–Terry rank loss (or MSE) as the exact method and an L2
pull toward the person's own initialisation λ0 (softmax of their experts'
SROCC, as the exact method starts from). The pull is worth ``l2`` images: it
weakens as the person's k grows (the loss is a mean, its evidence is not).
``l2`` is chosen on validation people at the k they allow; from ``cv_from_k``
on (ks no validation person may allow), ``l2_grid`` makes the pull a per-person
choice by cross-validation inside the support set, on the features already at
hand (the held-out folds are scored linearly; nothing outside the support is
read). λ is saved like the exact method's,
and the query is scored by the **exact** merged model at that λ.

Options: ``hybrid_steps > 0`` takes that many exact steps from the instant
solution. The variants measured against it (each person's own expansion point,
linear scoring of the query) are subclasses in ``bench/instant_variants.py``:
they override :meth:`Instant.support_features` and :meth:`Instant.predict`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from aestimo.evaluation import metrics
from aestimo.options import Options
from aestimo.personalization.methods import task_vectors as tv
from aestimo.personalization.methods.linear_problem import LinearProblem
from aestimo.personalization.methods.linearized import LinearScores, linear_scores, score_features
from aestimo.personalization.registry import Context, Method, Query, State, Support, register, shareable
from aestimo.training.losses import person_loss


class InstantOptions(Options):
    loss: Literal["rank", "mse"] = "rank"
    layerwise: bool = True
    init: Literal["srocc", "uniform"] = "srocc"
    init_temperature: float = 10.0
    l2: float = Field(default=10.0, ge=0)  # the pull toward λ0, in images' worth; chosen on validation people in the pipeline
    # from k = cv_from_k on, the pull is chosen per person among ``l2_grid`` by cv_folds-fold
    # cross-validation inside the support (for ks no validation person allows); empty: ``l2`` always
    l2_grid: tuple[float, ...] = ()
    cv_from_k: int = Field(default=50, ge=4)
    cv_folds: int = Field(default=3, ge=2)
    expand_at: Literal["uniform", "mean_init"] = "uniform"  # the shared expansion point
    max_iter: int = Field(default=200, ge=1)  # Newton iterations (a handful suffice; L-BFGS's without a pull)
    feature_batch: int = Field(default=32, ge=1)  # images per forward + backward pass of the features (memory bound)
    # the hybrid: exact steps from the instant solution (0 = pure instant), with the exact method's options
    hybrid_steps: int = Field(default=0, ge=0)
    batch_size: int = Field(default=32, ge=2)
    lr: tuple[float, float] = (1e-2, 1e-3)
    weight_decay: float = Field(default=0.0, ge=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)

    def lambda_options(self, steps: int) -> tv.LambdaOptions:
        """The exact method's options with these settings (its initialisation, the hybrid's steps)."""
        return tv.LambdaOptions(
            loss=self.loss, layerwise=self.layerwise, init=self.init, init_temperature=self.init_temperature,
            steps=steps, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay, dropout=self.dropout,
        )


def cv_pull(
    base: torch.Tensor, phi: torch.Tensor, at: torch.Tensor, y: torch.Tensor, expert_scores: np.ndarray,
    options: InstantOptions, seed: int, n_layers: int, problem: LinearProblem | None = None,
) -> tuple[float, dict[float, float]]:
    """The pull among ``options.l2_grid`` whose fits on the other folds rank each held-out fold of the
    support best (mean SROCC over folds of the linear scores; on a tie the larger, more conservative
    pull), and the mean SROCC per value. Every fold's λ0 comes from its training part alone.
    ``problem``: the support's linear problem when the caller has it (its kernel is shared)."""
    k = len(y)
    problem = problem or LinearProblem.of(base, phi, at, options.layerwise)
    order = np.random.default_rng(seed).permutation(k)
    folds = [f for f in np.array_split(order, min(options.cv_folds, k // 2)) if len(f) >= 2]
    cfg = options.lambda_options(0)
    per_value: dict[float, list[float]] = {v: [] for v in options.l2_grid}
    for held in folds:
        train = torch.as_tensor(np.setdiff1d(order, held))
        held_t = torch.as_tensor(np.sort(held))
        init = tv.init_coefficients(expert_scores[:, train.numpy()], y[train].numpy(), n_layers, cfg)
        fold = problem.subset(train)
        for v in options.l2_grid:
            lam = fold.solve(y[train], init, person_loss(options.loss), v, options.max_iter)
            pred = linear_scores(base[held_t], phi[held_t], at, lam).numpy()
            per_value[v].append(metrics.srocc(y[held_t].numpy(), pred))
    mean = {v: float(np.nanmean(r)) if np.isfinite(r).any() else float("nan") for v, r in per_value.items()}
    best = max(sorted(options.l2_grid, reverse=True), key=lambda v: np.nan_to_num(mean[v], nan=-np.inf))
    return best, mean


def expansion_point(options: InstantOptions, supports: Sequence[Support], shape: tuple[int, int]) -> torch.Tensor:
    """The shared λe ``(n, L)``: uniform, or the mean of the supports' initialisations."""
    n, L = shape
    if options.expand_at == "uniform" or not supports:
        return torch.full((n, L), 1.0 / n)
    cfg = options.lambda_options(0).model_copy(update={"layerwise": True})
    return torch.stack([tv.init_coefficients(s.expert_scores, s.y.numpy(), L, cfg) for s in supports]).mean(0)


def _key(at: torch.Tensor) -> str:
    return "linearized/" + hashlib.sha256(at.numpy().tobytes()).hexdigest()[:16]


def _features_chunk(ctx: Context, task: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    source, rows, at, batch, progress = task
    base, phi = score_features(ctx.merged, ctx.images(rows), at, ctx.template(source), batch, progress, desc=f"features ({source})")
    return rows, base, phi


def features_for(ctx: Context, at: torch.Tensor, rows_by_source: dict[str, torch.Tensor], batch: int, progress: bool = True) -> LinearScores:
    """The context's shared linearized scores at ``at``, extended by any rows it lacks (computed
    here, or in ``ctx.workers`` worker processes)."""
    key = _key(at)
    lin = ctx.shared.get(key) or LinearScores.empty(at)
    tasks = []
    for source, rows in rows_by_source.items():
        todo = lin.missing(rows)
        for part in torch.tensor_split(todo, max(1, min(ctx.workers, len(todo)))) if len(todo) else []:
            tasks.append((source, part, at, batch, progress and len(tasks) == 0))
    for rows, base, phi in ctx.map(_features_chunk, tasks):
        lin = lin.extended(rows, base, phi)
    ctx.shared[key] = lin
    return lin


# instant's per-image features are saved with the run (the catalog's shared_features) for later stages
shareable(
    "linearized/",
    lambda lin: {"at": lin.at, "rows": lin.rows, "base": lin.base, "phi": lin.phi},
    lambda parts: LinearScores(parts["at"], parts["rows"], parts["base"], parts["phi"]),
)


@register("instant")
class Instant(Method):
    """λ by a linear solve over per-image features shared by everyone (see the module docstring).

    The state is ``{"lambda": (n, L)}`` (or ``(n,)``), like the exact method's.
    """

    Options = InstantOptions
    deployable = True
    heavy = True

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        """Features of every support image at the shared point."""
        at = expansion_point(self.options, supports, ctx.merged.shape)
        self._at_key = _key(at)
        rows: dict[str, list[torch.Tensor]] = {}
        for s in supports:
            rows.setdefault(s.source, []).append(s.rows)
        features_for(ctx, at, {src: torch.cat(r) for src, r in rows.items()}, self.options.feature_batch)

    def cover(self, rows_by_source: dict[str, torch.Tensor], ctx: Context) -> None:
        """Features of more images at the shared point (e.g. the album a self-training wrapper pseudo-labels)."""
        features_for(ctx, self._linear(ctx).at, rows_by_source, self.options.feature_batch)

    def support_features(self, support: Support, init: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(at, base, phi)``: the expansion point and the support images' base scores and features there."""
        lin = self._linear(ctx)
        return (lin.at, *lin.take(support.rows))

    def _linear(self, ctx: Context) -> LinearScores:
        key = getattr(self, "_at_key", None)
        if key is None or key not in ctx.shared:
            raise RuntimeError("instant: no shared features; run Method.prepare on the planned supports first")
        return ctx.shared[key]

    def fit(self, support: Support, ctx: Context) -> State:
        o = self.options
        L = ctx.merged.shape[1]
        init = tv.init_coefficients(support.expert_scores, support.y.numpy(), L, o.lambda_options(0))
        at, base, phi = self.support_features(support, init, ctx)
        l2, problem = o.l2, LinearProblem.of(base, phi, at, o.layerwise)
        if o.l2_grid and len(support.y) >= o.cv_from_k:
            l2, _ = cv_pull(base, phi, at, support.y, support.expert_scores, o, support.seed, L, problem)
        lam = problem.solve(support.y, init, person_loss(o.loss), l2, o.max_iter)
        if o.hybrid_steps:
            person = tv.Person(f"{support.rater_id}/{support.repeat}", ctx.images(support.rows), support.y,
                               support.expert_scores, support.seed)
            lam = tv.personalize(ctx.merged, [person], ctx.template(support.source), o.lambda_options(o.hybrid_steps),
                                 progress=False, init=lam[None])[0]
        return {"lambda": lam, "l2": torch.tensor(float(l2), dtype=torch.float64)}

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        return tv.predict(ctx.merged, ctx.images(query.rows), state["lambda"], ctx.template(query.source)).numpy()

