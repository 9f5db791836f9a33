"""``pa_iaa``: personality-assisted multi-task learning (PA-IAA, Li et al. 2020), on θ0's features.

Two heads on the pooled backbone feature, trained once on the PARA-like source's training raters:

* an **aesthetic head**: a 10-bin vote distribution (softmax), its expected score over the
  source's template the generic score ``g(x)``;
* a **Big-Five head**: ``tanh`` outputs ``t(x)`` (5 traits, ``TRAITS`` order, the profile
  scale 1..10 mapped linearly onto [-1, 1]): the personality of the people who like the image.

Each head is ``Linear(D, 1024) -> BN -> ReLU -> Linear(1024, 512) -> BN -> ReLU -> Linear(512, out)``.

**Targets** (:func:`split_targets`, :func:`trait_targets`). An image's aesthetic target is its
vote distribution (``dist``, EMD loss) or, where the source gives none, its mean on the template
(squared error of the expected score). Its trait target is the mean scaled traits of the training
raters who rated it *highly*: at or above that rater's own 80th percentile (``high_quantile``,
linear interpolation) of all their ratings of the source in :class:`FieldData`; raters without a
profile are left out, and so are images that no rater rated highly (no trait loss for them).

**Training** (:func:`train_pa_iaa`) minimises ``aesthetic + gamma * trait MSE`` (:func:`joint_loss`)
with AdamW (seeded init and batches, cosine decay) on the train split and evaluates both terms on
the val split every ``eval_every`` steps. Both output layers start at the training means
(:func:`start_at_means`: zero weights, biases giving the mean vote distribution and mean traits),
so a head moves away from the mean only where the data pull it: on the PARA-like data the trait
targets are mostly noise (a ridge on the features beats their mean by 2 % of the MSE) and a
randomly started trait head ended worse than the mean. With the backbone frozen the two heads
share no parameter, so each keeps the step with its own lowest val loss (the joint val loss is
then the lowest the sum can reach on the evaluated steps). Features are cached: seconds on a CPU.

**Personalization** (registry method ``pa_iaa``, inter-task fusion, :func:`fuse`): a person's score
is ``a * g(x) + w · t(x) + b``, everything but ``a`` (1), ``w`` (5) and ``b`` frozen. People come from
sources with other template scales (1..5, 1..10), so ``a`` and ``b`` map the generic score onto the
person's scale. Ridge in standardised units, closed form: ``g`` and each trait are standardised over
the k support images (``z``), ``y`` is centred (the intercept is free), and the coefficients ``u``
on ``z`` (in ``y``'s units) minimise ``sum_i (y_i - z_i · u)^2 + l2_generic (u_g - sd_y)^2 + l2 |u_t|^2``:
the generic weight is pulled toward 1 in standardised units (``y``'s spread per spread of ``g``,
never a flipped ranking from a few noisy images) and the trait weights toward 0. Both strengths
count in images' worth (the loss is a sum over the support), so their pull fades as k grows.
``l2 = l2_generic = 0`` is least squares of the whole model (it recovers a person whose scores are
exactly such a function); large strengths give the generic ranking. A trait constant on the
support gets weight 0.

The defaults were read off people the pipeline never tests, at k = 10 (5 draws each): the AADB-like
validation people and the PARA-like training raters' ratings of the val-split images. Weak pulls
lost to the generic ranking (SROCC 0.18 to 0.20 vs 0.235 and 0.231 at ``l2 = 1``); ``l2 = 30``,
``l2_generic = 10`` gave 0.265 and 0.229 (``l2 = 100``: 0.248 and 0.232). Few images tell little
about which traits a person follows; the pipeline can choose ``l2`` on validation people.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from pydantic import Field
from torch import nn

from aestimo.bundle import TensorBundle
from aestimo.data.scales import SCALES
from aestimo.models.head import init_linear_
from aestimo.models.scorer import template_tensor
from aestimo.options import Options
from aestimo.personalization.methods.field.field_data import TRAITS, FieldData
from aestimo.personalization.registry import Context, GenericModel, Method, Query, State, Support, register
from aestimo.training.losses import emd_per_sample
from aestimo.training.schedule import cosine_lr
from aestimo.training.optim import adamw

log = logging.getLogger(__name__)

#: The trained heads' name in ``Context.artifacts`` (the method's name).
ARTIFACT = "pa_iaa"

HIDDEN = (1024, 512)
N_BINS = 10
#: the profiles' Big-Five scale, mapped linearly onto the trait head's [-1, 1]
TRAIT_SCALE = (1.0, 10.0)


# --------------------------------------------------------------------------- the model


def _mlp(embed_dim: int, hidden: Sequence[int], out: int) -> nn.Sequential:
    """``Linear -> BatchNorm1d -> ReLU`` per hidden width, then ``Linear(out)``."""
    layers: list[nn.Module] = []
    width = embed_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


class PaIaaHeads(nn.Module):
    """The aesthetic-distribution head and the Big-Five head on one pooled feature ``(B, D)``.

    ``forward`` returns ``(probs (B, 10), traits (B, 5))``: probabilities summing to one and
    traits in [-1, 1]. :meth:`score` gives the expected score over ``template``.
    """

    def __init__(self, embed_dim: int, template: str = "five", hidden: Sequence[int] = HIDDEN, seed: int | None = None):
        super().__init__()
        self.embed_dim, self.template_name, self.hidden = embed_dim, template, tuple(hidden)
        self.aesthetic = _mlp(embed_dim, self.hidden, N_BINS)
        self.traits = _mlp(embed_dim, self.hidden, len(TRAITS))
        self.register_buffer("template", template_tensor(template))
        if seed is not None:  # PyTorch's default init, drawn from a seeded generator (reproducible)
            gen = torch.Generator().manual_seed(int(seed))
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    init_linear_(m, gen)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.softmax(self.aesthetic(features), dim=-1), torch.tanh(self.traits(features))

    def score(self, probs: torch.Tensor) -> torch.Tensor:
        """Expected score of bin probabilities over the template."""
        return probs @ self.template

    def meta(self) -> dict:
        """What rebuilds the module (:meth:`from_bundle`)."""
        return {"embed_dim": self.embed_dim, "template": self.template_name, "hidden": list(self.hidden)}

    @classmethod
    def from_bundle(cls, bundle: TensorBundle) -> PaIaaHeads:
        """The trained heads of a :func:`train_pa_iaa` bundle, in eval mode."""
        m = bundle.meta
        heads = cls(int(m["embed_dim"]), m["template"], m.get("hidden", HIDDEN))
        heads.load_state_dict(bundle.tensors)
        return heads.eval()


# --------------------------------------------------------------------------- targets and loss


def scale_traits(x):
    """Profile scale 1..10 onto [-1, 1] (numpy, torch or polars)."""
    lo, hi = TRAIT_SCALE
    return (x - lo) * (2.0 / (hi - lo)) - 1.0


def trait_targets(ratings: pl.DataFrame, profiles: pl.DataFrame, source: str, high_quantile: float = 0.8) -> pl.DataFrame:
    """Per image: the mean scaled traits of the raters who rated it highly (see the module docstring).

    ``ratings`` needs ``source, image_id, rater_id, score``; returns ``image_id, n_high`` and one
    column per trait (``TRAITS``), only images with at least one high rating by a profiled rater.
    """
    r = ratings.filter((pl.col("source") == source) & pl.col("rater_id").is_not_null())
    r = r.with_columns(pl.col("score").quantile(high_quantile, interpolation="linear").over("rater_id").alias("_q"))
    high = r.filter(pl.col("score") >= pl.col("_q") - 1e-9).select("image_id", "rater_id")
    prof = profiles.filter(pl.col("source") == source).select("rater_id", *TRAITS)
    return (
        high.join(prof, on="rater_id", how="inner")
        .group_by("image_id")
        .agg(pl.len().alias("n_high"), *[scale_traits(pl.col(t).cast(pl.Float64)).mean() for t in TRAITS])
        .sort("image_id")
    )


@dataclass(frozen=True)
class Targets:
    """One split's training targets, rows aligned: ``dist`` is zeros where ``has_dist`` is False,
    ``traits`` zeros where ``has_traits`` is False."""

    rows: torch.Tensor  # positions in FieldData.features
    mean: torch.Tensor  # (n,) template scale
    dist: torch.Tensor  # (n, 10)
    has_dist: torch.Tensor  # (n,) bool
    traits: torch.Tensor  # (n, 5) in [-1, 1]
    has_traits: torch.Tensor  # (n,) bool

    def subset(self, idx: torch.Tensor) -> Targets:
        return Targets(*(t[idx] for t in (self.rows, self.mean, self.dist, self.has_dist, self.traits, self.has_traits)))

    def to(self, device: torch.device) -> Targets:
        return Targets(*(t.to(device) for t in (self.rows, self.mean, self.dist, self.has_dist, self.traits, self.has_traits)))


def split_targets(data: FieldData, source: str, split: str, traits: pl.DataFrame) -> Targets:
    """The aesthetic targets of the source's images in ``split`` (train or val), with their trait
    targets from ``traits`` (:func:`trait_targets` of all of ``data``'s ratings)."""
    g = data.generic_scores.filter((pl.col("source") == source) & (pl.col("split") == split)).sort("image_id")
    g = g.join(traits, on="image_id", how="left")
    ids = g["image_id"].to_list()
    dist = [d if d is not None else [0.0] * N_BINS for d in g["dist"].to_list()]
    traits = g.select(*TRAITS).to_numpy()
    has_traits = ~np.isnan(traits.astype(np.float64)).any(axis=1)
    return Targets(
        rows=data.rows(ids),
        mean=torch.as_tensor(g["mean_template"].to_numpy().copy(), dtype=torch.float32),
        dist=torch.as_tensor(np.asarray(dist, dtype=np.float64), dtype=torch.float32),
        has_dist=torch.as_tensor(g["dist"].is_not_null().to_numpy()),
        traits=torch.as_tensor(np.nan_to_num(traits.astype(np.float64)), dtype=torch.float32),
        has_traits=torch.as_tensor(has_traits),
    )


def joint_loss(
    probs: torch.Tensor, traits: torch.Tensor, y: Targets, template: torch.Tensor, gamma: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(aesthetic + gamma * trait, aesthetic, trait)`` on a batch.

    Aesthetic: mean over the batch of EMD (r = 2) to ``dist`` where it exists, else the squared error
    of the expected score to ``mean``. Trait: MSE over the traits of the images with a trait target
    (0 when the batch has none).
    """
    emd = emd_per_sample(probs, y.dist)
    se = (probs @ template - y.mean).pow(2)
    aesthetic = torch.where(y.has_dist, emd, se).mean()
    if bool(y.has_traits.any()):
        trait = (traits[y.has_traits] - y.traits[y.has_traits]).pow(2).mean()
    else:
        trait = traits.sum() * 0.0
    return aesthetic + gamma * trait, aesthetic, trait


# --------------------------------------------------------------------------- training


class PaIaaTrainOptions(Options):
    """PA-IAA's generic training (defaults train in a few seconds on a CPU, features cached)."""

    source: str = "para"  # the source with individual ratings and Big-Five profiles
    hidden: tuple[int, ...] = (1024, 512)  # each head's hidden widths (PA-IAA's; smaller ones for quick tests)
    gamma: float = Field(default=1.0, ge=0)  # weight of the trait MSE in the joint loss
    high_quantile: float = Field(default=0.8, gt=0, lt=1)  # a rating is "high" at or above the rater's own quantile
    steps: int = Field(default=100, ge=1)
    batch_size: int = Field(default=64, ge=2)  # batch norm needs two
    lr: float = Field(default=1e-4, gt=0)  # AdamW, cosine decay to lr / 100
    weight_decay: float = Field(default=0.01, ge=0)
    eval_every: int = Field(default=10, ge=1)
    seed: int = 0  # added to FieldData.seed: the init and the batches


@torch.no_grad()
def _evaluate(heads: PaIaaHeads, features: torch.Tensor, y: Targets, gamma: float) -> tuple[float, float, float]:
    heads.eval()
    probs, traits = heads(features[y.rows])
    return tuple(float(v) for v in joint_loss(probs, traits, y, heads.template, gamma))  # type: ignore[return-value]


@torch.no_grad()
def start_at_means(heads: PaIaaHeads, y: Targets) -> None:
    """Zero both output layers' weights and set their biases so that every image starts at the
    training means: the mean vote distribution (the mean score's nearest bins where no image has
    one) and the mean trait target. A head moves away from the mean only where the data pull it."""
    if bool(y.has_dist.any()):
        dist = y.dist[y.has_dist].mean(0)
    else:  # the mean score, split between its two nearest bins
        t = heads.template
        pos = torch.clamp((y.mean.mean() - t[0]) / (t[1] - t[0]), 0, len(t) - 1)
        lo = int(pos.floor().clamp(max=len(t) - 2))
        dist = torch.zeros(len(t))
        dist[lo], dist[lo + 1] = 1 - (pos - lo), pos - lo
    traits = y.traits[y.has_traits].mean(0) if bool(y.has_traits.any()) else torch.zeros(len(TRAITS))
    for mlp, bias in ((heads.aesthetic, dist.clamp_min(1e-4).log()), (heads.traits, torch.atanh(traits.clamp(-0.99, 0.99)))):
        mlp[-1].weight.zero_()
        mlp[-1].bias.copy_(bias)


def _head_state(heads: PaIaaHeads, name: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in heads.state_dict().items() if k.startswith(f"{name}.")}


def train_pa_iaa(data: FieldData, options: PaIaaTrainOptions, device: torch.device | None = None) -> TensorBundle:
    """Train :class:`PaIaaHeads` on ``options.source``'s train split, selecting on its val split, on
    ``device`` (the CPU by default; batches are drawn on the CPU, so every device draws the same).

    The bundle's tensors are the state dict; its meta rebuilds the module (``embed_dim``, ``template``,
    ``hidden``) and records ``source``, ``traits``, ``trait_scale``, the options, the validation
    history and the selected step's losses (``val_loss``, ``val_aesthetic``, ``val_trait``, ``init_val_loss``).
    """
    t0 = time.perf_counter()
    if options.source not in SCALES:
        raise KeyError(f"pa_iaa: unknown source {options.source!r}")
    template = SCALES[options.source].template
    tt = trait_targets(data.ratings, data.profiles, options.source, options.high_quantile)
    train = split_targets(data, options.source, "train", tt)
    val = split_targets(data, options.source, "val", tt)
    if len(train.rows) < 2:
        raise ValueError(f"pa_iaa: {options.source!r} has {len(train.rows)} training images; need at least 2")
    seed = int(data.seed) + int(options.seed)
    features = data.features.float()
    heads = PaIaaHeads(features.shape[1], template, options.hidden, seed=seed)
    start_at_means(heads, train)
    dev = torch.device(device or "cpu")
    heads, features, train, val = heads.to(dev), features.to(dev), train.to(dev), val.to(dev)
    val_set = val if len(val.rows) > 0 else train  # no val split: select on the training loss
    gen = torch.Generator().manual_seed(seed)
    opt = adamw(heads.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    first = _evaluate(heads, features, val_set, options.gamma)
    # the heads share no parameter (the backbone is frozen): each keeps its own best step
    best = {"aesthetic": (first[1], 0, _head_state(heads, "aesthetic")), "traits": (first[2], 0, _head_state(heads, "traits"))}
    history = [{"step": 0, "val_loss": first[0], "val_aesthetic": first[1], "val_trait": first[2]}]
    n, bs = len(train.rows), min(options.batch_size, len(train.rows))
    for step in range(options.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, options.steps, options.lr, options.lr / 100)
        heads.train()
        y = train.subset(torch.randperm(n, generator=gen)[:bs])
        probs, traits = heads(features[y.rows])
        loss, _, _ = joint_loss(probs, traits, y, heads.template, options.gamma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % options.eval_every == 0 or done == options.steps:
            v = _evaluate(heads, features, val_set, options.gamma)
            history.append({"step": done, "train_loss": float(loss.detach()), "val_loss": v[0], "val_aesthetic": v[1], "val_trait": v[2]})
            for name, value in (("aesthetic", v[1]), ("traits", v[2])):
                if value < best[name][0] - 1e-9:
                    best[name] = (value, done, _head_state(heads, name))
    heads.load_state_dict({**heads.state_dict(), **best["aesthetic"][2], **best["traits"][2]})
    final = _evaluate(heads, features, val_set, options.gamma)
    meta = {
        **heads.meta(),
        "source": options.source,
        "traits": list(TRAITS),
        "trait_scale": {"profile": list(TRAIT_SCALE), "head": [-1.0, 1.0]},
        "options": options.model_dump(),
        "n_train": n,
        "n_val": len(val.rows),
        "n_train_traits": int(train.has_traits.sum()),
        "n_val_traits": int(val.has_traits.sum()),
        "best_step": {"aesthetic": best["aesthetic"][1], "traits": best["traits"][1]},
        "init_val_loss": first[0],
        "val_loss": final[0],
        "val_aesthetic": final[1],
        "val_trait": final[2],
        "history": history,
        "seconds": time.perf_counter() - t0,
    }
    log.info("pa_iaa: val loss %.4f -> %.4f in %.1f s", first[0], final[0], meta["seconds"])
    return TensorBundle({k: v.detach().cpu().clone().contiguous() for k, v in heads.state_dict().items()}, meta)


# --------------------------------------------------------------------------- personalization


def fuse(
    g: np.ndarray, traits: np.ndarray, y: np.ndarray, l2: float, l2_generic: float
) -> tuple[float, np.ndarray, float]:
    """``(a, w (5,), b)`` of ``y ≈ a g + traits @ w + b`` on one support set (see the module docstring)."""
    g, t, y = (np.asarray(v, dtype=np.float64) for v in (g, traits, y))
    x = np.column_stack([g.reshape(-1, 1), t])
    mu, sd = x.mean(axis=0), x.std(axis=0)
    live = sd > 1e-8 * (1.0 + np.abs(mu))  # constant on the support: weight 0
    z = np.where(live, (x - mu) / np.where(live, sd, 1.0), 0.0)
    yc = y - y.mean()
    pen = np.array([l2_generic] + [l2] * t.shape[1])
    prior = np.zeros(len(pen))
    prior[0] = yc.std()
    u = np.linalg.lstsq(z.T @ z + np.diag(pen), z.T @ yc + pen * prior, rcond=None)[0]
    beta = np.where(live, u / np.where(live, sd, 1.0), 0.0)
    return float(beta[0]), beta[1:], float(y.mean() - mu @ beta)


class PaIaaOptions(Options):
    # pulls in images' worth (see the module): trait weights toward 0, the generic weight toward 1 (standardised)
    l2: float = Field(default=30.0, ge=0)
    l2_generic: float = Field(default=10.0, ge=0)


SHARED_KEY = "pa_iaa"


def generic_outputs(ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g (N,), traits (N, 5))`` of every cached image, computed once per context (``ctx.shared``)."""
    if SHARED_KEY not in ctx.shared:
        if ctx.features is None:
            raise ValueError("pa_iaa: this context has no backbone features (ctx.features is None)")
        if ARTIFACT not in ctx.artifacts:
            raise ValueError("pa_iaa: ctx.artifacts has no 'pa_iaa' bundle (train it with train_pa_iaa first)")
        heads = PaIaaHeads.from_bundle(ctx.artifacts[ARTIFACT])
        with torch.no_grad():
            probs, traits = heads(ctx.features.float())
            ctx.shared[SHARED_KEY] = (heads.score(probs), traits)
    return ctx.shared[SHARED_KEY]


@register("pa_iaa")
class PaIaa(Method):
    """``a * g(x) + w · t(x) + b`` from the frozen PA-IAA heads, ``a``, ``w``, ``b`` fitted on the support.

    The state is ``{"a": (1,), "w": (5,), "b": (1,)}``.
    """

    Options = PaIaaOptions
    generic_model = GenericModel(PaIaaTrainOptions, train_pa_iaa)

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        generic_outputs(ctx)

    def fit(self, support: Support, ctx: Context) -> State:
        g, t = generic_outputs(ctx)
        a, w, b = fuse(
            g[support.rows].numpy(), t[support.rows].numpy(), support.y.numpy(), self.options.l2, self.options.l2_generic
        )
        return {
            "a": torch.tensor([a], dtype=torch.float32),
            "w": torch.as_tensor(w, dtype=torch.float32),
            "b": torch.tensor([b], dtype=torch.float32),
        }

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        g, t = generic_outputs(ctx)
        gq, tq = g[query.rows].double().numpy(), t[query.rows].double().numpy()
        return float(state["a"][0]) * gq + tq @ state["w"].double().numpy() + float(state["b"][0])
