"""``multi_attribute``: per-attribute heads on θ0's features (MT-CNN, AesMamba-F), and a person's
linear model on an image's attribute scores.

**Model** (:class:`AttributeHeads`). :class:`aestimo.models.scorer.MultiAttributeScorer` without its
backbone: per attribute a :class:`~aestimo.models.head.ResidualAdapter` and a
:class:`~aestimo.models.head.ScoreHead` on θ0's pooled backbone feature, which is cached
(``FieldData.features``), so the backbone stays frozen and training is cheap (default world: 2191
train images, 16 heads, 200 steps: about a minute on one CPU thread). The
parameter names are the scorer's (``adapters.<a>.*``, ``heads.<a>.*``): a bundle's tensors load
into a ``MultiAttributeScorer`` built on θ0's backbone with ``load_state_dict(..., strict=False)``.
Every head predicts on one template, ``ten`` (1..10).

**Attributes** (:func:`attribute_spec`). One head per ``attr_*`` column of
``FieldData.generic_scores`` with at least ``min_labels`` train-split labels (the ``attr_`` prefix
dropped: PARA's quality, composition, color, dof, content, light, content_preference,
willingness_to_share, difficulty; SPAQ's brightness, colorfulness, contrast, noisiness,
sharpness; KonIQ's mos_zscore; AADB's where its images are in an expert split), plus
``aesthetics``: the overall ``mean`` of the images of the sources that label one of those
attributes (the overall score MT-CNN trains beside the attributes). ``attributes`` names a subset.
A name two sources share (``content``: PARA and AADB) is one head fed by both.

**Targets.** Sources code an attribute on different scales (PARA 1..5, AADB -1..1, SPAQ 0..100),
so each (attribute, source) pair is mapped linearly from its *train-split* minimum and maximum onto
the template's range (1..10), values outside clipped; a pair without two distinct train labels is
dropped. Per head the loss is the squared error of the expected score plus ``w_bal`` (0.001) ×
balanced CE (:func:`aestimo.training.losses.balanced_ce`) of the head's bin logits against the
target's nearest bin, the class prior the head's train-split bin counts + 1; images without a label
for an attribute are masked out of that head's loss. The heads' losses are summed.

**Training** (:func:`train_multi_attribute`): AdamW, cosine decay, batches drawn from the train
split's labelled images with a seeded generator, dropout from explicit seeded masks; every
``eval_every`` steps the mean validation SROCC over (attribute, source) pairs is measured and the
best state kept. Test-split labels are read only by :func:`attribute_metrics`.

**Personalization** (registry method ``multi_attribute``): the A attribute scores of an image are
the features of a per-person ridge regression (:func:`aestimo.personalization.methods.linear_probe.ridge_loo`:
unpenalised intercept, strength by exact leave-one-out on the k support images), each score
standardised by its spread over the support set so the penalty weighs every attribute alike.
Scores of the cached images are computed once per process and kept by row in ``ctx.shared``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import polars as pl
import torch
from pydantic import Field
from torch import nn

from aestimo.bundle import TensorBundle
from aestimo.evaluation import metrics
from aestimo.models.head import ResidualAdapter, ScoreHead, sigmoid_distribution
from aestimo.models.scorer import template_tensor
from aestimo.options import Options
from aestimo.personalization.methods.field.field_data import FieldData
from aestimo.personalization.methods.linear_probe import DEFAULT_ALPHAS, ridge_loo
from aestimo.personalization.registry import Context, GenericModel, Method, Query, State, Support, register
from aestimo.training.losses import expert_loss_terms, nearest_bin
from aestimo.training.schedule import cosine_lr
from aestimo.training.optim import adamw

log = logging.getLogger(__name__)

OVERALL = "aesthetics"  # the head on the image's overall mean
TEMPLATE = "ten"
ARTIFACT = "multi_attribute"  # the bundle's name in ctx.artifacts
SHARED_KEY = "multi_attribute"  # the attribute scores of the cached images, in ctx.shared


# --------------------------------------------------------------------------- the model


class AttributeHeads(nn.Module):
    """Per attribute ``ResidualAdapter -> ScoreHead`` on pooled features ``(B, D)``.

    ``forward`` gives every head's expected score on :data:`TEMPLATE`, ``(B, A)`` in
    ``attributes`` order (dropout off: masks are passed explicitly while training).
    """

    def __init__(
        self,
        embed_dim: int,
        attributes: Sequence[str],
        hidden: int = 512,
        dropout: float = 0.5,
        adapter_reduction: int = 4,
        n_bins: int = 10,
        seed: int | None = None,
    ):
        super().__init__()
        self.attributes = list(attributes)
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"AttributeHeads needs distinct attribute names, got {self.attributes}")
        self.embed_dim, self.hidden, self.dropout = int(embed_dim), int(hidden), float(dropout)
        self.adapter_reduction, self.n_bins = int(adapter_reduction), int(n_bins)
        self.adapters = nn.ModuleDict({a: ResidualAdapter(embed_dim, adapter_reduction) for a in self.attributes})
        self.heads = nn.ModuleDict({a: ScoreHead(embed_dim, hidden, dropout, n_bins) for a in self.attributes})
        self.register_buffer("template", template_tensor(TEMPLATE), persistent=False)  # moves with the heads
        if seed is not None:  # as MultiAttributeScorer.head_init: attribute k from seed + k
            for k, a in enumerate(self.attributes):
                self.adapters[a].reset_parameters(int(seed) + k)
                self.heads[a].reset_parameters(int(seed) + k)

    def logits(self, features: torch.Tensor, attribute: str, drop_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One head's pre-sigmoid bin outputs ``(B, n_bins)``."""
        return self.heads[attribute].logits(self.adapters[attribute](features), drop_mask)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([sigmoid_distribution(self.logits(features, a)) @ self.template for a in self.attributes], 1)

    def meta(self) -> dict[str, Any]:
        """What rebuilds the module (:meth:`from_bundle`)."""
        return {
            "embed_dim": self.embed_dim, "attributes": self.attributes, "hidden": self.hidden, "dropout": self.dropout,
            "adapter_reduction": self.adapter_reduction, "n_bins": self.n_bins, "template": TEMPLATE,
        }

    @classmethod
    def from_bundle(cls, bundle: TensorBundle) -> AttributeHeads:
        """The trained heads of a :func:`train_multi_attribute` bundle, in eval mode."""
        m = bundle.meta
        heads = cls(int(m["embed_dim"]), m["attributes"], int(m["hidden"]), float(m["dropout"]), int(m["adapter_reduction"]), int(m["n_bins"]))
        heads.load_state_dict(bundle.tensors)
        return heads.eval()


@torch.no_grad()
def attribute_scores(heads: AttributeHeads, features: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Every head's score of every feature row, ``(N, A)`` (eval mode, in batches)."""
    heads.eval()
    if not len(features):
        return torch.empty((0, len(heads.attributes)))
    dev = heads.template.device
    return torch.cat([heads(features[i : i + batch].float().to(dev)).cpu() for i in range(0, len(features), batch)])


# --------------------------------------------------------------------------- labels


class MultiAttributeTrainOptions(Options):
    """The generic multi-attribute training (features cached: no backbone runs)."""

    # head names (attr_ prefix dropped, "aesthetics" for the overall mean); None = every attr_* column
    # with >= min_labels train labels, plus "aesthetics" when `overall`
    attributes: tuple[str, ...] | None = None
    min_labels: int = Field(default=20, ge=2)
    overall: bool = True  # with attributes None: add the "aesthetics" head
    hidden: int = Field(default=512, ge=1)  # MultiAttributeScorer's layout
    adapter_reduction: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)
    # on the default world the mean val SROCC peaks after 50-100 steps and then slowly declines (overfitting)
    steps: int = Field(default=200, ge=1)
    batch_size: int = Field(default=128, ge=2)
    lr: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (3e-4, 3e-6)  # cosine from the first to the second
    weight_decay: float = Field(default=1e-4, ge=0)
    w_bal: float = Field(default=0.001, ge=0)  # balanced CE beside the squared error, as the experts train
    eval_every: int = Field(default=25, ge=1)
    seed: int = 0  # added to FieldData.seed: the init, the batches, the dropout masks


@dataclass(frozen=True)
class Spec:
    """Which heads there are, which column feeds each, and each (attribute, source) pair's train range."""

    attributes: list[str]
    columns: dict[str, str]  # attribute -> generic_scores column
    ranges: dict[str, dict[str, tuple[float, float]]]  # attribute -> source -> (train min, train max)

    def meta(self) -> dict[str, Any]:
        return {"columns": self.columns, "ranges": {a: {s: list(r) for s, r in by.items()} for a, by in self.ranges.items()}}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Spec:
        ranges = {a: {s: (float(r[0]), float(r[1])) for s, r in by.items()} for a, by in meta["ranges"].items()}
        return cls(list(meta["attributes"]), dict(meta["columns"]), ranges)


def _expert_split(data: FieldData) -> pl.DataFrame:
    """The generic labels of images that have features."""
    return data.generic_scores.filter(pl.col("image_id").is_in(data.image_ids))


def attribute_spec(data: FieldData, options: MultiAttributeTrainOptions) -> Spec:
    """The heads and their targets' ranges, from the train split only (see the module docstring)."""
    g = _expert_split(data)
    train = g.filter(pl.col("split") == "train")
    attr_cols = sorted(c for c in g.columns if c.startswith("attr_"))
    if options.attributes is None:
        columns = {c[len("attr_"):]: c for c in attr_cols if train[c].drop_nulls().len() >= options.min_labels}
        if options.overall and columns:
            labelled = train.filter(pl.any_horizontal(pl.col(list(columns.values())).is_not_null()))["source"].unique()
            columns[OVERALL] = "mean"
            overall_sources = set(labelled.to_list())
        else:
            overall_sources = set()
    else:
        columns = {}
        for a in options.attributes:
            if a == OVERALL:
                columns[a] = "mean"
            elif f"attr_{a}" in attr_cols:
                columns[a] = f"attr_{a}"
            else:
                raise KeyError(f"multi_attribute: no column attr_{a} in generic_scores; known: {[c[5:] for c in attr_cols]}")
        named = [c for a, c in columns.items() if a != OVERALL]
        overall_sources = set(
            train.filter(pl.any_horizontal(pl.col(named).is_not_null()))["source"].unique().to_list() if named else train["source"].unique().to_list()
        )
    ranges: dict[str, dict[str, tuple[float, float]]] = {}
    for a, col in columns.items():
        t = train.filter(pl.col(col).is_not_null())
        if a == OVERALL:
            t = t.filter(pl.col("source").is_in(sorted(overall_sources)))
        by = t.group_by("source").agg(pl.col(col).min().alias("lo"), pl.col(col).max().alias("hi")).sort("source")
        ranges[a] = {s: (float(lo), float(hi)) for s, lo, hi in by.iter_rows() if hi > lo}
    kept = [a for a in columns if ranges[a]]
    if not kept:
        raise ValueError("multi_attribute: no attribute has two distinct train-split labels; nothing to train")
    return Spec(kept, {a: columns[a] for a in kept}, {a: ranges[a] for a in kept})


@dataclass(frozen=True)
class Labels:
    """One split's labelled images: feature rows, sources, raw labels and normalised targets ``(n, A)`` (NaN: no label)."""

    rows: torch.Tensor
    sources: list[str]
    raw: np.ndarray
    targets: torch.Tensor


def split_labels(data: FieldData, spec: Spec, split: str) -> Labels:
    """The images of ``split`` with a label for at least one head, their targets on the template."""
    g = _expert_split(data).filter(pl.col("split") == split).sort("source", "image_id")
    lo_t, hi_t = float(template_tensor(TEMPLATE).min()), float(template_tensor(TEMPLATE).max())
    sources = g["source"].to_numpy()
    raw = np.full((g.height, len(spec.attributes)), np.nan)
    norm = np.full_like(raw, np.nan)
    for j, a in enumerate(spec.attributes):
        v = g[spec.columns[a]].cast(pl.Float64).fill_null(np.nan).to_numpy()
        for s, (lo, hi) in spec.ranges[a].items():
            m = (sources == s) & np.isfinite(v)
            raw[m, j] = v[m]
            norm[m, j] = np.clip(lo_t + (v[m] - lo) * (hi_t - lo_t) / (hi - lo), lo_t, hi_t)
    keep = np.isfinite(norm).any(axis=1)
    ids = g["image_id"].to_numpy()[keep].tolist()
    return Labels(data.rows(ids), sources[keep].tolist(), raw[keep], torch.as_tensor(norm[keep], dtype=torch.float32))


def class_priors(targets: torch.Tensor, n_bins: int = 10) -> list[torch.Tensor]:
    """Per head, the train targets' nearest-bin counts + 1 (balanced CE's prior)."""
    template = template_tensor(TEMPLATE)
    out = []
    for j in range(targets.shape[1]):
        t = targets[:, j][torch.isfinite(targets[:, j])]
        out.append(torch.bincount(nearest_bin(t, template), minlength=n_bins).float() + 1.0)
    return out


# --------------------------------------------------------------------------- loss and training


def heads_loss(
    heads: AttributeHeads,
    features: torch.Tensor,
    targets: torch.Tensor,
    priors: Sequence[torch.Tensor],
    w_bal: float,
    drop_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum over heads of squared error + ``w_bal`` × balanced CE on the images labelled for that head.

    ``targets`` ``(B, A)`` on the template, NaN where unlabelled (masked out); ``drop_masks``
    ``(A, B, hidden)`` (scaled inverted-dropout masks) or None for no dropout.
    """
    total = features.sum() * 0.0
    for j, a in enumerate(heads.attributes):
        m = torch.isfinite(targets[:, j])
        if not bool(m.any()):
            continue
        logits = heads.logits(features[m], a, None if drop_masks is None else drop_masks[j][m])
        probs = sigmoid_distribution(logits)
        total = total + expert_loss_terms(probs, logits, targets[m, j], None, heads.template, class_prior=priors[j], w_bal=w_bal)["loss"]
    return total


def pair_sroccs(scores: np.ndarray, labels: Labels, attributes: Sequence[str]) -> list[dict[str, Any]]:
    """SROCC and PLCC of every head against its labels, per (attribute, source) pair with labels."""
    sources = np.asarray(labels.sources)
    out = []
    for j, a in enumerate(attributes):
        for s in sorted(set(sources[np.isfinite(labels.raw[:, j])].tolist())):
            m = (sources == s) & np.isfinite(labels.raw[:, j])
            out.append({"attribute": a, "source": s, "n": int(m.sum()),
                        "srocc": metrics.srocc(labels.raw[m, j], scores[m, j]), "plcc": metrics.plcc(labels.raw[m, j], scores[m, j])})
    return out


def _mean_srocc(heads: AttributeHeads, features: torch.Tensor, labels: Labels) -> float:
    r = [p["srocc"] for p in pair_sroccs(attribute_scores(heads, features[labels.rows]).numpy(), labels, heads.attributes)]
    r = [v for v in r if np.isfinite(v)]
    return float(np.mean(r)) if r else float("nan")


def train_multi_attribute(data: FieldData, options: MultiAttributeTrainOptions, device: torch.device | None = None) -> TensorBundle:
    """Train :class:`AttributeHeads` on the train split, selecting the step on the val split, on
    ``device`` (the CPU by default; batches and dropout masks are drawn on the CPU).

    The bundle's tensors are the state dict; its meta rebuilds the module (:meth:`AttributeHeads.meta`)
    and records the columns and train ranges of every head (``columns``, ``ranges``), the options,
    the validation history, the chosen step and its mean val SROCC, and the seconds it took.
    """
    t0 = time.perf_counter()
    spec = attribute_spec(data, options)
    train, val = split_labels(data, spec, "train"), split_labels(data, spec, "val")
    if len(train.rows) < 2:
        raise ValueError(f"multi_attribute: {len(train.rows)} labelled training images; need at least 2")
    seed = int(data.seed) + int(options.seed)
    features = data.features.float()
    heads = AttributeHeads(features.shape[1], spec.attributes, options.hidden, options.dropout, options.adapter_reduction, seed=seed)
    dev = torch.device(device or "cpu")
    heads, features = heads.to(dev), features.to(dev)
    priors = [p.to(dev) for p in class_priors(train.targets)]
    targets = train.targets.to(dev)
    gen = torch.Generator().manual_seed(seed)
    opt = adamw(heads.parameters(), lr=options.lr[0], weight_decay=options.weight_decay)
    has_val = len(val.rows) > 0
    best = _mean_srocc(heads, features, val) if has_val else float("nan")
    best_step, history = 0, [{"step": 0, "val_srocc": best}]
    best_state = {k: v.detach().clone() for k, v in heads.state_dict().items()}
    n, bs, keep = len(train.rows), min(options.batch_size, len(train.rows)), 1.0 - options.dropout
    for step in range(options.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, options.steps, *options.lr)
        idx = torch.randperm(n, generator=gen)[:bs]
        masks = None
        if options.dropout > 0:
            masks = (torch.bernoulli(torch.full((len(spec.attributes), bs, options.hidden), keep), generator=gen) / keep).to(dev)
        loss = heads_loss(heads, features[train.rows[idx]], targets[idx], priors, options.w_bal, masks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if has_val and (done % options.eval_every == 0 or done == options.steps):
            v = _mean_srocc(heads, features, val)
            history.append({"step": done, "train_loss": float(loss.detach()), "val_srocc": v})
            if np.isfinite(v) and not v <= best + 1e-9:  # NaN best (untrained heads) is beaten by any number
                best, best_step = v, done
                best_state = {k: t.detach().clone() for k, t in heads.state_dict().items()}
    if not has_val:  # nothing to select on: the last step
        best_step, best_state = options.steps, {k: t.detach().clone() for k, t in heads.state_dict().items()}
    meta = {
        **heads.meta(),
        **spec.meta(),
        "options": options.model_dump(mode="json"),
        "n_train": n,
        "n_val": len(val.rows),
        "best_step": best_step,
        "val_srocc": best,
        "history": history,
        "seconds": time.perf_counter() - t0,
    }
    log.info("multi_attribute: %d heads, val SROCC %.3f (step %d) in %.1f s", len(spec.attributes), best, best_step, meta["seconds"])
    return TensorBundle({k: v.cpu().contiguous() for k, v in best_state.items()}, meta)


def attribute_metrics(bundle: TensorBundle, data: FieldData) -> pl.DataFrame:
    """Per (attribute, source): the test split's labelled images ``n``, SROCC and PLCC of the head's
    score against the raw labels (the only place test labels are read)."""
    spec = Spec.from_meta(bundle.meta)
    test = split_labels(data, spec, "test")
    heads = AttributeHeads.from_bundle(bundle)
    rows = pair_sroccs(attribute_scores(heads, data.features[test.rows]).numpy(), test, spec.attributes)
    schema = {"attribute": pl.String, "source": pl.String, "n": pl.Int64, "srocc": pl.Float64, "plcc": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


# --------------------------------------------------------------------------- personalization


class MultiAttributeOptions(Options):
    # ridge strengths to choose from by leave-one-out, relative (see aestimo.personalization.methods.linear_probe)
    alphas: tuple[Annotated[float, Field(gt=0)], ...] = Field(default=DEFAULT_ALPHAS, min_length=1)
    attributes: tuple[str, ...] | None = None  # the heads used as features; None = every head of the bundle


def cached_scores(ctx: Context, rows: torch.Tensor) -> torch.Tensor:
    """Every head's score of the cached images ``rows`` ``(len(rows), A)``: computed once per
    process, kept by row in ``ctx.shared`` (rows not yet there are computed now)."""
    if ctx.features is None:
        raise ValueError("multi_attribute: this context has no backbone features (ctx.features is None)")
    entry = ctx.shared.get(SHARED_KEY)
    if entry is None:
        if ARTIFACT not in ctx.artifacts:
            raise ValueError("multi_attribute: ctx.artifacts has no 'multi_attribute' bundle (train it with train_multi_attribute first)")
        n_attr = len(ctx.artifacts[ARTIFACT].meta["attributes"])
        entry = {"scores": torch.full((len(ctx.features), n_attr), float("nan")), "done": torch.zeros(len(ctx.features), dtype=torch.bool)}
        ctx.shared[SHARED_KEY] = entry
    rows = torch.as_tensor(rows, dtype=torch.long)
    todo = torch.unique(rows[~entry["done"][rows]])
    if len(todo):
        heads = AttributeHeads.from_bundle(ctx.artifacts[ARTIFACT])
        entry["scores"][todo] = attribute_scores(heads, ctx.features[todo])
        entry["done"][todo] = True
    return entry["scores"][rows]


@register("multi_attribute")
class MultiAttribute(Method):
    """Ridge of a person's scores on an image's attribute scores (the ``multi_attribute`` heads).

    The state is ``{"w": (A,), "b": (1,), "alpha": (1,)}`` (``w`` on the heads' raw scores, in the
    order of ``attributes`` or the bundle's heads; ``alpha`` absolute, on the standardised scores).
    """

    Options = MultiAttributeOptions
    generic_model = GenericModel(MultiAttributeTrainOptions, train_multi_attribute, attribute_metrics)

    def _columns(self, ctx: Context) -> list[int]:
        names = list(ctx.artifacts[ARTIFACT].meta["attributes"]) if ARTIFACT in ctx.artifacts else []
        if self.options.attributes is None:
            return list(range(len(names)))
        missing = [a for a in self.options.attributes if a not in names]
        if missing:
            raise KeyError(f"multi_attribute: no head for {missing}; the bundle has {names}")
        return [names.index(a) for a in self.options.attributes]

    def _x(self, rows: torch.Tensor, ctx: Context) -> np.ndarray:
        return cached_scores(ctx, rows)[:, self._columns(ctx)].double().numpy()

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        """The attribute scores of every support and query image, in one pass."""
        rows = [s.rows for s in supports] + [q.rows for q in queries]
        if rows:
            cached_scores(ctx, torch.cat(rows))

    def fit(self, support: Support, ctx: Context) -> State:
        x, y = self._x(support.rows, ctx), support.y.double().numpy()
        sd = x.std(axis=0)
        live = sd > 1e-8 * (1.0 + np.abs(x).mean(axis=0))  # a head constant on the support tells nothing
        w = np.zeros(x.shape[1])
        b, alpha = float(y.mean()), float("inf")
        if live.any():
            u, b, alpha, _ = ridge_loo(x[:, live] / sd[live], y, self.options.alphas)
            w[live] = u / sd[live]
            b = float(y.mean() - x.mean(axis=0) @ w)
        return {
            "w": torch.as_tensor(w, dtype=torch.float32),
            "b": torch.tensor([b], dtype=torch.float32),
            "alpha": torch.tensor([alpha], dtype=torch.float32),
        }

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        return self._x(query.rows, ctx) @ state["w"].double().numpy() + float(state["b"][0])
