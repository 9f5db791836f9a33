"""Few-shot personalization: learn only the coefficients λ that mix the task vectors.

For one person with k rated images, ``theta_user = theta_0 + sum_i lambda[i, l]
tau[i, l]`` with θ0 and τ frozen. λ is initialised from how well each expert
already ranks the person's k images (softmax of 10 × SROCC, broadcast over
layers) and trained with a Bradley–Terry pairwise rank loss (MSE as an option)
under AdamW with a cosine schedule. Nothing here looks at a person's query
images: the schedule is fixed. The head's dropout is off while λ trains by
default; ``dropout=0.5`` trains λ with it on, as the reference code does
(it trains in train mode), from masks drawn from the person's seed.

Many people can be personalized at once (``batched=True``): their λ are
stacked and the merged forward is ``vmap``-ed over people. AdamW acts
element-wise and each person's loss depends only on their own λ, so the result
is the one-by-one loop's, up to float32 rounding: the batched convolutions
round differently, and Adam's normalisation amplifies that on coefficients
whose gradients are near its eps, so λ agree to ~1e-2 and scores to ~1e-4 on
EfficientNet (exactly, on small models). It pays off on a GPU; on two CPU
cores the loop is faster (bench/personalize_speed.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from tqdm.auto import tqdm

from aestimo.evaluation import metrics
from aestimo.models.inference import SCORE_BATCH
from aestimo.models.merged import MergedScorer
from aestimo.options import Options
from aestimo.personalization.registry import Context, Method, Query, State, Support, register
from aestimo.training.losses import person_loss
from aestimo.training.schedule import cosine_lr


class LambdaOptions(Options):
    """How λ is learned (the options of the ``task_vectors`` method)."""

    loss: Literal["rank", "mse"] = "rank"  # "rank" (Bradley–Terry) or "mse"
    layerwise: bool = True  # False: one coefficient per source (the layer-agnostic ablation)
    init: Literal["srocc", "uniform"] = "srocc"  # softmax(temperature × expert SROCC on the support set), or 1/n
    init_temperature: float = 10.0
    steps: int = Field(default=500, ge=0)  # 0: λ stays at its initialisation (the λ0-only baseline)
    batch_size: int = Field(default=32, ge=2)  # all k images when k < batch_size
    lr: tuple[float, float] = (1e-2, 1e-3)  # cosine from the first to the second
    weight_decay: float = Field(default=0.0, ge=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)  # the head's dropout while λ trains (the reference: 0.5)


@dataclass
class Person:
    """One person's support set: images (normalised, NCHW), scores on the template scale,
    each expert's zero-shot scores on those images ``(n_experts, k)``, and a seed."""

    key: str
    x: torch.Tensor
    y: torch.Tensor
    expert_scores: np.ndarray
    seed: int


def init_coefficients(expert_scores: np.ndarray, y: np.ndarray, n_layers: int, cfg: LambdaOptions) -> torch.Tensor:
    """λ₀: softmax(T × SROCC(expert_i, y)) over experts (undefined SROCC counts as 0), or 1/n.

    Returns ``(n, L)`` when layer-wise, ``(n,)`` otherwise.
    """
    n = expert_scores.shape[0]
    if cfg.init == "uniform":
        w = torch.full((n,), 1.0 / n)
    else:
        r = np.array([metrics.srocc(y, s) for s in expert_scores], dtype=np.float64)
        r = np.nan_to_num(r, nan=0.0)
        w = torch.softmax(torch.as_tensor(cfg.init_temperature * r, dtype=torch.float32), dim=0)
    return w[:, None].repeat(1, n_layers) if cfg.layerwise else w


def _batch_indices(people: Sequence[Person], b: int, gens: list[torch.Generator]) -> list[torch.Tensor]:
    out = []
    for p, g in zip(people, gens):
        k = len(p.y)
        out.append(torch.arange(k) if b >= k else torch.randperm(k, generator=g)[:b])
    return out


def _drop_masks(gens: list[torch.Generator], b: int, merged: MergedScorer, p: float) -> torch.Tensor | None:
    """Inverted-dropout masks ``(P, b, hidden)`` for the head, from each person's generator (None when p = 0)."""
    if p == 0.0:
        return None
    hidden, keep = merged.module.head.hidden, 1.0 - p
    return torch.stack([torch.bernoulli(torch.full((b, hidden), keep), generator=g) / keep for g in gens]).to(merged.device)


def personalize(
    merged: MergedScorer,
    people: Sequence[Person],
    template: torch.Tensor,
    cfg: LambdaOptions,
    batched: bool = False,
    progress: bool = True,
    desc: str = "personalize",
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """Learn λ for every person; returns ``(P, n, L)`` (layer-wise) or ``(P, n)``.

    ``batched=True`` runs all people in one vmapped step (they must share k);
    otherwise each person runs alone. Both optimise the same objective (see
    the module docstring for how close their λ are). ``init`` replaces the
    SROCC initialisation (the hybrid method starts from instant's λ).
    """
    if not people:
        n, L = merged.shape
        return torch.empty((0, n, L) if cfg.layerwise else (0, n))
    n_layers = merged.shape[1]
    if init is None:
        init = torch.stack([init_coefficients(p.expert_scores, p.y.cpu().numpy(), n_layers, cfg) for p in people])
    if cfg.steps == 0:
        return init.clone()
    init = init.to(merged.device)
    if not batched:
        return torch.cat(
            [_run(merged, [p], init[i : i + 1], template, cfg, False, progress and len(people) == 1, desc) for i, p in enumerate(tqdm(people, desc=desc, disable=not progress or len(people) == 1, leave=False))]
        ).cpu()
    ks = {len(p.y) for p in people}
    if len(ks) != 1:
        raise ValueError(f"batched personalization needs one k for all people, got {sorted(ks)}")
    return _run(merged, list(people), init, template, cfg, True, progress, desc).cpu()


def _run(merged, people, init, template, cfg, batched, progress, desc) -> torch.Tensor:
    lam = init.clone().requires_grad_(True)
    opt = torch.optim.AdamW([lam], lr=cfg.lr[0], weight_decay=cfg.weight_decay)
    fit = person_loss(cfg.loss)
    gens = [torch.Generator().manual_seed(p.seed) for p in people]
    b = min(cfg.batch_size, len(people[0].y))
    for step in tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, *cfg.lr)
        idx = _batch_indices(people, b, gens)
        masks = _drop_masks(gens, b, merged, cfg.dropout)
        if batched:
            x = torch.stack([p.x[i] for p, i in zip(people, idx)])
            pred = merged.batched(x, lam, masks) @ template  # (P, b)
            loss = sum(fit(pred[j], p.y[i]) for j, (p, i) in enumerate(zip(people, idx)))
        else:
            p, i = people[0], idx[0]
            loss = fit(merged(p.x[i], lam[0], None if masks is None else masks[0]) @ template, p.y[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return lam.detach()


def predict(merged: MergedScorer, x: torch.Tensor, lam: torch.Tensor, template: torch.Tensor, batch: int = SCORE_BATCH) -> torch.Tensor:
    """Scores on the template scale of the merged model for ``x`` (merged once), on the CPU."""
    return (merged.probs(x, lam, batch) @ template.to(merged.device)).cpu()


@register("task_vectors")
class TaskVectors(Method):
    """λ learned by gradient steps through the merged scorer (the exact method).

    The state is ``{"lambda": (n, L)}`` (layer-wise) or ``{"lambda": (n,)}``.
    """

    Options = LambdaOptions
    deployable = True
    heavy = True

    def _person(self, support: Support, ctx: Context) -> Person:
        return Person(f"{support.rater_id}/{support.repeat}", ctx.images(support.rows), support.y.to(ctx.device), support.expert_scores, support.seed)

    def fit(self, support: Support, ctx: Context) -> State:
        lam = personalize(ctx.merged, [self._person(support, ctx)], ctx.template(support.source), self.options, progress=False)
        return {"lambda": lam[0]}

    def fit_many(self, supports: Sequence[Support], ctx: Context) -> list[State]:
        """All people in one vmapped optimisation (they must share a source and k)."""
        sources = {s.source for s in supports}
        if len(sources) != 1:
            raise ValueError(f"batched personalization needs one source at a time, got {sorted(sources)}")
        people = [self._person(s, ctx) for s in supports]
        lam = personalize(ctx.merged, people, ctx.template(supports[0].source), self.options, batched=True)
        return [{"lambda": x} for x in lam]

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        return predict(ctx.merged, ctx.images(query.rows), state["lambda"], ctx.template(query.source)).numpy()
