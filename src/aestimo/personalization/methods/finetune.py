"""Fine-tuning baselines: what learning λ buys over fine-tuning the zero-shot model's own weights.

The zero-shot model is the merged task-vector scorer at uniform λ (``1/n`` for every source and
layer): ``theta_0 + mean_i tau_i``. Both methods start from it and run it through
``torch.func.functional_call`` on ``ctx.merged.module`` with its buffers fixed: the module stays in
eval mode, so batch-norm running statistics are frozen (neither used from the batch nor updated)
and dropout is off. The loss is the Bradley–Terry rank loss of the expected score on the source's
template (``loss="mse"``: squared error), under AdamW with a cosine learning-rate schedule.

* ``finetune_head``: only the head's parameters (names starting with one of ``head``, by default
  the real scorer's ``"head."``; a toy module names its own) train, full batch (k <= 100), on
  the person's k support images. On a real :class:`~aestimo.models.scorer.Scorer` (whose forward is
  ``head(features(x))``) the zero-shot backbone features of an image are computed once per process
  and kept by row in ``ctx.shared``, so a person costs a few head steps; elsewhere every step runs
  the whole module. The state is the head's tensors.
* ``finetune_all``: every parameter trains, with the exact λ method's step budget (50 steps,
  mini-batches of 32 drawn by a generator seeded from the person's seed). The state is every
  parameter of the fine-tuned model (megabytes per person): run it on a small sample of people only.

The learning rate option is ``learning_rate`` (cosine decay to a tenth of it), not ``lr``: the
personalize block's ``defaults.lr`` is λ's (1e-2 to 1e-3), far too large for network weights, and
would otherwise be filled in. ``steps``, ``batch_size`` and ``weight_decay`` do take ``defaults``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call

from aestimo.models.inference import SCORE_BATCH, batch_slices
from aestimo.models.merged import MergedScorer
from aestimo.models.scorer import Scorer
from aestimo.options import Options
from aestimo.personalization.registry import Context, Method, Query, State, Support, register
from aestimo.training.losses import person_loss
from aestimo.training.schedule import cosine_lr
from aestimo.training.optim import adamw

SHARED_KEY = "finetune/zero_shot_features"  # the zero-shot backbone features of cached images, in ctx.shared

class FinetuneHeadOptions(Options):
    """How the head is fine-tuned (defaults not tuned: ``learning_rate`` can be chosen on validation
    people with a ``selection.grids`` entry)."""

    loss: Literal["rank", "mse"] = "rank"  # "rank" (Bradley–Terry) or "mse"
    steps: int = Field(default=50, ge=0)
    learning_rate: float = Field(default=1e-3, gt=0)  # AdamW, cosine decay to a tenth of it
    weight_decay: float = Field(default=0.0, ge=0)
    head: tuple[str, ...] = Field(default=("head.",), min_length=1)  # prefixes of the head's parameter names
    cache_features: bool = True  # on a Scorer with head "head.": the backbone runs once per image


class FinetuneAllOptions(Options):
    """How the whole model is fine-tuned (defaults not tuned, as :class:`FinetuneHeadOptions`)."""

    loss: Literal["rank", "mse"] = "rank"
    steps: int = Field(default=50, ge=0)  # the exact λ method's budget
    batch_size: int = Field(default=32, ge=2)  # all k images when k <= batch_size
    learning_rate: float = Field(default=1e-4, gt=0)  # AdamW, cosine decay to a tenth of it
    weight_decay: float = Field(default=0.0, ge=0)


def zero_shot_parameters(merged: MergedScorer) -> dict[str, torch.Tensor]:
    """The merged scorer's parameters at uniform λ and its buffers, detached."""
    n, L = merged.shape
    with torch.no_grad():
        return {k: v.detach() for k, v in merged.unfolded(torch.full((n, L), 1.0 / n)).items()}


def head_names(module: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """The parameter names (not buffers) that start with one of ``prefixes``."""
    names = [n for n, _ in module.named_parameters() if n.startswith(tuple(prefixes))]
    if not names:
        known = sorted({n.split(".")[0] + "." for n, _ in module.named_parameters()})
        raise ValueError(f"finetune: no parameter starts with {list(prefixes)}; the module's prefixes are {known}")
    return names


def scores(module: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Expected scores of ``x`` on ``template`` with ``params`` (parameters and buffers) in ``module``."""
    return functional_call(module, params, (x,)) @ template


@torch.no_grad()
def batched_scores(module: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, template: torch.Tensor, batch: int = SCORE_BATCH) -> torch.Tensor:
    if not len(x):
        return torch.empty(0)
    return torch.cat([scores(module, params, x[part], template) for part in batch_slices(len(x), batch)])


def _optimise(params: dict[str, torch.Tensor], loss_of, steps: int, lr: float, weight_decay: float) -> dict[str, torch.Tensor]:
    """AdamW on ``params`` (cloned) for ``steps``, cosine from ``lr`` to ``lr / 10``;
    ``loss_of(params, step)`` gives the loss."""
    train = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    if steps == 0:
        return {k: v.detach() for k, v in train.items()}
    opt = adamw(list(train.values()), lr=lr, weight_decay=weight_decay)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, lr / 10)
        loss = loss_of(train, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {k: v.detach() for k, v in train.items()}


# --------------------------------------------------------------------------- zero-shot features


class _Features(nn.Module):
    """``Scorer.features`` as a module's forward (so functional_call can run it)."""

    def __init__(self, scorer: Scorer):
        super().__init__()
        self.m = scorer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.features(x)


@dataclass
class RowCache:
    """Values computed once per cached image: ``values[pos[row]]``."""

    pos: dict[int, int]
    values: torch.Tensor

    def missing(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(sorted({int(r) for r in rows.tolist()} - set(self.pos)), dtype=torch.long)

    def add(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        start = len(self.values)
        self.pos.update({int(r): start + i for i, r in enumerate(rows.tolist())})
        self.values = torch.cat([self.values, values]) if start else values

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        return self.values[torch.as_tensor([self.pos[int(r)] for r in rows.tolist()], dtype=torch.long)]


def _can_cache(module: nn.Module, prefixes: Sequence[str]) -> bool:
    return isinstance(module, Scorer) and tuple(prefixes) == ("head.",)


def zero_shot_features(ctx: Context, rows: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """The zero-shot model's pooled backbone features of the cached images ``rows``, computed once
    per process (kept by row in ``ctx.shared``)."""
    cache = ctx.shared.get(SHARED_KEY)
    if cache is None:
        cache = ctx.shared[SHARED_KEY] = RowCache({}, torch.empty(0))
    todo = cache.missing(rows)
    if len(todo):
        merged = ctx.merged
        params = {f"m.{k}": v for k, v in zero_shot_parameters(merged).items()}
        body = _Features(merged.module)
        with torch.no_grad():
            feats = torch.cat([functional_call(body, params, (ctx.images(todo[i : i + batch]),)) for i in range(0, len(todo), batch)])
        cache.add(todo, feats)
    return cache.take(rows)


# --------------------------------------------------------------------------- the methods


@register("finetune_head")
class FinetuneHead(Method):
    """The zero-shot model with its head fine-tuned on the support set (everything else frozen).

    The state is the head's tensors (parameter names as in ``ctx.merged.module``).
    """

    Options = FinetuneHeadOptions
    heavy = True

    def _cached(self, ctx: Context) -> bool:
        return self.options.cache_features and _can_cache(ctx.merged.module, self.options.head)

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        """The zero-shot backbone features of every support and query image (on a Scorer)."""
        rows = [s.rows for s in supports] + [q.rows for q in queries]
        if rows and self._cached(ctx):
            zero_shot_features(ctx, torch.cat(rows))

    def fit(self, support: Support, ctx: Context) -> State:
        module, base = ctx.merged.module, zero_shot_parameters(ctx.merged)
        names = head_names(module, self.options.head)
        template, y = ctx.template(support.source), support.y
        if self._cached(ctx):
            feats, head = zero_shot_features(ctx, support.rows), module.head
            strip = len("head.")

            def loss_of(p, step):
                return person_loss(self.options.loss)(functional_call(head, {k[strip:]: v for k, v in p.items()}, (feats,)) @ template, y)
        else:
            x = ctx.images(support.rows)

            def loss_of(p, step):
                return person_loss(self.options.loss)(scores(module, {**base, **p}, x, template), y)

        o = self.options
        return _optimise({n: base[n] for n in names}, loss_of, o.steps, o.learning_rate, o.weight_decay)

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        module, template = ctx.merged.module, ctx.template(query.source)
        if self._cached(ctx):
            feats, strip = zero_shot_features(ctx, query.rows), len("head.")
            with torch.no_grad():
                return (functional_call(module.head, {k[strip:]: v for k, v in state.items()}, (feats,)) @ template).cpu().numpy()
        return batched_scores(module, {**zero_shot_parameters(ctx.merged), **state}, ctx.images(query.rows), template).cpu().numpy()


@register("finetune_all")
class FinetuneAll(Method):
    """The zero-shot model with every parameter fine-tuned on the support set (buffers frozen).

    The state is every parameter of the fine-tuned model: megabytes per person, so run it on a
    small sample of people only (``sample:`` in the method's entry).
    """

    Options = FinetuneAllOptions
    heavy = True

    def fit(self, support: Support, ctx: Context) -> State:
        module, base = ctx.merged.module, zero_shot_parameters(ctx.merged)
        names = [n for n, _ in module.named_parameters()]
        buffers = {k: v for k, v in base.items() if k not in set(names)}
        x, y, template = ctx.images(support.rows), support.y, ctx.template(support.source)
        k, b = len(y), min(self.options.batch_size, len(y))
        gen = torch.Generator().manual_seed(int(support.seed))

        def loss_of(p, step):
            idx = torch.arange(k) if b >= k else torch.randperm(k, generator=gen)[:b]
            return person_loss(self.options.loss)(scores(module, {**buffers, **p}, x[idx], template), y[idx])

        o = self.options
        return _optimise({n: base[n] for n in names}, loss_of, o.steps, o.learning_rate, o.weight_decay)

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        params = {**zero_shot_parameters(ctx.merged), **state}
        return batched_scores(ctx.merged.module, params, ctx.images(query.rows), ctx.template(query.source)).cpu().numpy()
