"""``aesmamba_p``: a person's attributes as a text prompt, fused with the image (after AesMamba-P).

What a person told about themselves (art and photo experience, Big-Five scores)
is written as a prompt with fixed templates (:func:`prompt_text`), encoded by a
frozen MiniLM (:mod:`aestimo.models.text`), and read by the image through
cross-attention (:class:`PromptFusion`): the pooled image feature ``f`` (θ0's
backbone, projected to ``width``) is the query, the prompt's token features
(projected to ``width``) the keys and values::

    f~ = f + CA(LN(f), LN(F_t))        f' = f~ + FFN(LN(f~))        score = head(f')

A learned null token is always among the keys, so the model runs without any
prompt (it then attends to the null token alone) and can ignore one.

**Encoding.** Each sentence of the prompt is encoded on its own (no padding,
no other sentence in its context) and the token features of the included
sentences are concatenated. A part's features therefore never depend on which
other parts are present: a prompt with a part left out is exactly the full
prompt with that part's tokens masked out of the attention. Each distinct
sentence is encoded once per process (4 levels of each experience, one Big-Five
line per rater: ~130 sentences for PARA's training raters, not 8 subsets × 120
raters of whole prompts).

**Part dropout** (training): each part of a training rating's prompt is left
out independently with probability ``part_dropout`` (0.5: the eight subsets
alike, the empty prompt included), so ONE model serves the ablation: the
method scores with no prompt, each single part, or all three (``contents``).

**Training** (:func:`train_prompt_model`): the source's (PARA's) training raters'
individual ratings of train-split images, MSE between the predicted score
(template scale) and the rating; AdamW, seeded; the epoch with the lowest
validation loss (val-split images, full prompts) is kept. The meta records the
validation loss of every subset of parts. A batch holds runs of ratings of the
same rater (``rater_group``), so each prompt's keys and values are computed once
per batch. PARA has few images (~900 in train, 25 ratings each): the image path
overfits them within an epoch or two, hence dropout on the image feature and
few epochs. Small tensors: run it on one thread where cores are shared.

**The method** (``aesmamba_p``): zero-shot reads the person's prompt only; with
``fine_tune_steps > 0`` it also fits the scoring head (its last layer by
default) to the person's k support images (Bradley–Terry rank loss or MSE,
dropout masks seeded from the support's seed). The state holds the prompt's
sentences (UTF-8, one per line) and any fine-tuned head weights.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from aestimo.bundle import TensorBundle
from aestimo.data.scales import SCALES, TEMPLATES
from aestimo.models.head import ScoreHead, sigmoid_distribution
from aestimo.models.text import PACKAGE, TEXT_DIM, text_encoder
from aestimo.options import Options
from aestimo.personalization.methods.field.field_data import FieldData
from aestimo.personalization.registry import Context, GenericModel, Method, Query, State, Support, register
from aestimo.training.losses import person_loss
from aestimo.training.optim import adamw

__all__ = [
    "ARTIFACT",
    "PARTS",
    "SHARED_KEY",
    "AesMambaP",
    "AesMambaPOptions",
    "PromptFusion",
    "PromptTrainOptions",
    "canonical_contents",
    "encode_sentences",
    "model_from_bundle",
    "prompt_parts",
    "prompt_text",
    "prompt_tokens",
    "retemplate",
    "state_sentences",
    "train_prompt_model",
]

log = logging.getLogger(__name__)

#: The name of the trained prompt model in ``Context.artifacts`` (the method's name).
ARTIFACT = "aesmamba_p"
#: The parts of a prompt, in the order they are written.
PARTS: tuple[str, ...] = ("art", "photo", "big5")
Part = Literal["art", "photo", "big5"]
TEMPLATES_TEXT: dict[str, str] = {
    "art": "My artistic experience is {art_experience}.",
    "photo": "My photographic experience is {photo_experience}.",
    "big5": (
        "In the Big-Five personality traits test, my scores are as follows: openness score is {big5_O}, "
        "conscientiousness score is {big5_C}, extroversion score is {big5_E}, agreeableness score is {big5_A}, "
        "and neuroticism score is {big5_N}."
    ),
}
_COLUMNS = {
    "art": ("art_experience",),
    "photo": ("photo_experience",),
    "big5": ("big5_O", "big5_C", "big5_E", "big5_A", "big5_N"),
}
#: Where :meth:`AesMambaP.prepare` leaves the token features of the planned people's sentences.
SHARED_KEY = "aesmamba_p/sentence_tokens"


# --------------------------------------------------------------------------- the prompt


def canonical_contents(contents: Sequence[str]) -> tuple[str, ...]:
    """``contents`` in the written order (art, photo, big5); unknown or repeated parts are errors."""
    contents = tuple(contents)
    unknown = [c for c in contents if c not in PARTS]
    if unknown or len(set(contents)) != len(contents):
        raise ValueError(f"prompt contents must be distinct parts of {list(PARTS)}, got {list(contents)}")
    return tuple(p for p in PARTS if p in contents)


def _value(profile: Mapping[str, Any], column: str) -> str:
    v = profile.get(column)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        raise ValueError(f"the profile has no value for {column!r}: cannot write its prompt")
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def prompt_parts(profile: Mapping[str, Any], contents: Sequence[str] = PARTS) -> list[str]:
    """The prompt's sentences for a profile row (``user_profiles`` columns), one per included part, in order."""
    return [
        TEMPLATES_TEXT[p].format(**{c: _value(profile, c) for c in _COLUMNS[p]}) for p in canonical_contents(contents)
    ]


def prompt_text(profile: Mapping[str, Any], contents: Sequence[str] = PARTS) -> str:
    """The prompt: the included sentences joined by single spaces ("" with no part)."""
    return " ".join(prompt_parts(profile, contents))


# --------------------------------------------------------------------------- encoding

_SENTENCES: dict[str, torch.Tensor] = {}  # this process's token features, by sentence


def encode_sentences(sentences: Sequence[str], shared: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Token features ``(T, 384)`` of each distinct sentence, each as encoded alone (see
    :meth:`~aestimo.models.text.TextEncoder.encode_each`), cached in this process; ``shared``
    (features already computed, e.g. in ``ctx.shared``) is read first. The encoder loads on first need."""
    shared = shared or {}
    todo = sorted({s for s in sentences if s not in shared and s not in _SENTENCES})
    if todo:
        _SENTENCES.update(zip(todo, text_encoder().encode_each(todo)))
    return {s: shared[s] if s in shared else _SENTENCES[s] for s in sentences}


def prompt_tokens(sentences: Sequence[str], shared: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
    """A prompt's token features ``(T, 384)``: its sentences' features, concatenated (``(0, 384)`` for none)."""
    if not sentences:
        return torch.zeros(0, TEXT_DIM)
    found = encode_sentences(sentences, shared)
    return torch.cat([found[s] for s in sentences])


# --------------------------------------------------------------------------- the model


def retemplate(scores: torch.Tensor | np.ndarray, source_template: str, target_template: str):
    """Scores on one 10-bin template mapped linearly onto another (bin i to bin i)."""
    a, b = TEMPLATES[source_template], TEMPLATES[target_template]
    return float(b[0]) + (scores - float(a[0])) * float((b[-1] - b[0]) / (a[-1] - a[0]))


class PromptFusion(nn.Module):
    """Cross-attention of the pooled image feature (query) on a prompt's tokens, a FFN, a score head.

    ``head="distribution"``: a :class:`~aestimo.models.head.ScoreHead` over 10 bins, the score its
    expectation on ``template``; ``"scalar"``: the same head with one output, plus ``center``.
    """

    def __init__(
        self,
        image_dim: int = 1280,
        text_dim: int = TEXT_DIM,
        width: int = 128,
        heads: int = 4,
        ffn_mult: int = 2,
        hidden: int = 256,
        dropout: float = 0.1,
        head: Literal["distribution", "scalar"] = "distribution",
        template: str = "five",
        center: float = 0.0,
        image_dropout: float = 0.0,
    ):
        super().__init__()
        self._config = {"image_dim": image_dim, "text_dim": text_dim, "width": width, "heads": heads, "ffn_mult": ffn_mult,
                        "hidden": hidden, "dropout": dropout, "head": head, "template": template, "center": center,
                        "image_dropout": image_dropout}
        self.head_kind, self.template = head, template
        self.image_in = nn.Sequential(nn.LayerNorm(image_dim), nn.Dropout(image_dropout), nn.Linear(image_dim, width))
        self.text_in = nn.Linear(text_dim, width)
        self.null = nn.Parameter(0.02 * torch.randn(1, 1, width))
        self.ln_q, self.ln_kv, self.ln_ffn = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(width, ffn_mult * width), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_mult * width, width))
        self.head = ScoreHead(width, hidden, dropout, n_bins=10 if head == "distribution" else 1)
        self.register_buffer("template_values", torch.as_tensor(TEMPLATES[template], dtype=torch.float32), persistent=False)
        self.register_buffer("center", torch.tensor(float(center)))

    def config(self) -> dict[str, Any]:
        """What rebuilds the module (JSON-able)."""
        return dict(self._config)

    def fuse(
        self, image: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``f'`` ``(B, width)`` of images ``(B, image_dim)`` reading prompts ``tokens`` ``(P, T, text_dim)``.

        ``index`` ``(B,)``: the prompt each image reads (None: prompt i for image i); ``mask`` ``(B, T)``:
        which of its prompt's tokens each image reads (False: padding or a part left out).

        The images of one prompt are its attention's queries together, so each prompt's keys and
        values are computed once however many images read it. Tokens no image of a prompt reads go
        in the key padding mask; where images of one prompt read different parts, an attention mask
        per image says which. The null token is always read.
        """
        f = self.image_in(image)
        b, width = f.shape
        if index is None:
            index = torch.arange(b, device=f.device)
        used, inv = torch.unique(index, return_inverse=True)
        counts = torch.bincount(inv, minlength=len(used))
        order = torch.argsort(inv, stable=True)
        pos = torch.empty_like(inv)
        pos[order] = torch.arange(b, device=f.device) - (torch.cumsum(counts, 0) - counts)[inv[order]]
        kv = self.ln_kv(torch.cat([self.null.expand(len(used), 1, -1), self.text_in(tokens[used])], dim=1))
        read = torch.zeros(len(used), int(counts.max()), kv.shape[1], dtype=torch.bool, device=f.device)
        read[:, :, 0] = True
        read[inv, pos, 1:] = mask.bool()
        q = f.new_zeros(len(used), read.shape[1], width)
        q[inv, pos] = self.ln_q(f)
        any_read = read.any(dim=1)  # (U, S)
        per_image = None
        if bool((read[inv, pos] != any_read[inv]).any()):
            per_image = (~read).repeat_interleave(self.attn.num_heads, dim=0)
        ca, _ = self.attn(q, kv, kv, key_padding_mask=~any_read, attn_mask=per_image, need_weights=False)
        f = f + ca[inv, pos]
        return f + self.ffn(self.ln_ffn(f))

    def to_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's raw outputs as scores on the model's template scale."""
        if self.head_kind == "distribution":
            return sigmoid_distribution(logits) @ self.template_values
        return logits[:, 0] + self.center

    def forward(
        self, image: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores ``(B,)`` on the model's template scale."""
        return self.to_scores(self.head.logits(self.fuse(image, tokens, mask, index)))


def model_from_bundle(bundle: TensorBundle) -> PromptFusion:
    """The trained model of a :func:`train_prompt_model` bundle, frozen, in eval mode."""
    model = PromptFusion(**bundle.meta["config"])
    model.load_state_dict(bundle.tensors, strict=True)
    return model.eval().requires_grad_(False)


# --------------------------------------------------------------------------- training


class PromptTrainOptions(Options):
    source: str = "para"  # whose raters' individual ratings (and profiles) train the model
    width: int = Field(default=128, ge=8)  # d: the image feature and the prompt tokens are projected to it
    heads: int = Field(default=4, ge=1)
    ffn_mult: int = Field(default=2, ge=1)
    hidden: int = Field(default=256, ge=1)  # the score head's hidden layer
    dropout: float = Field(default=0.1, ge=0, lt=1)
    image_dropout: float = Field(default=0.5, ge=0, lt=1)  # dropout on the image feature's inputs (it overfits few images)
    head: Literal["distribution", "scalar"] = "distribution"
    part_dropout: float = Field(default=0.5, ge=0, lt=1)  # each prompt part left out of a training rating's prompt, independently
    epochs: int = Field(default=4, ge=1)  # on PARA the validation loss is lowest after one or two
    batch_size: int = Field(default=256, ge=2)
    rater_group: int = Field(default=16, ge=1)  # one rater's ratings that run together in a batch (prompt projected once)
    lr: float = Field(default=3e-4, gt=0)
    weight_decay: float = Field(default=1e-2, ge=0)
    seed: int | None = None  # None: the FieldData's seed


def _subset_name(contents: Sequence[str]) -> str:
    return "+".join(contents) if contents else "none"


def _rater_prompts(profiles: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rater's full prompt ``(R, T, 384)`` (zero padded) and the part of each token ``(R, T)``
    (its index in :data:`PARTS`; -1 for padding)."""
    sentences = [prompt_parts(prof, PARTS) for prof in profiles]
    found = encode_sentences([s for ss in sentences for s in ss])
    per_rater = []
    for ss in sentences:
        feats = [found[s] for s in ss]
        per_rater.append((torch.cat(feats), torch.cat([torch.full((len(t),), i) for i, t in enumerate(feats)])))
    t_max = max(len(p) for _, p in per_rater)
    tokens = torch.zeros(len(per_rater), t_max, TEXT_DIM)
    part = torch.full((len(per_rater), t_max), -1, dtype=torch.long)
    for r, (t, p) in enumerate(per_rater):
        tokens[r, : len(t)], part[r, : len(p)] = t, p
    return tokens, part


def _token_mask(part: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``(B, T)``: a token is read where it is no padding and its part ``keep`` ``(B, len(PARTS))`` keeps."""
    return (part >= 0) & keep.gather(1, part.clamp_min(0))


def _rater_batches(rater: torch.Tensor, batch_size: int, group: int, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch's batches: each rater's ratings shuffled and cut into runs of ``group``, the runs
    shuffled and concatenated, cut into batches of ``batch_size`` (a batch holds ~batch_size / group raters)."""
    runs = []
    for r in torch.unique(rater).tolist():
        idx = torch.nonzero(rater == r).reshape(-1)
        runs.extend(idx[torch.randperm(len(idx), generator=gen)].split(group))
    order = torch.cat([runs[i] for i in torch.randperm(len(runs), generator=gen).tolist()])
    return list(order.split(batch_size))


def _val_loss(model: PromptFusion, x, y, rater, tokens, part, keep_parts: Sequence[str], batch: int = 4096) -> float:
    keep = torch.tensor([p in keep_parts for p in PARTS], device=y.device)
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(y), batch):
            r = rater[i : i + batch]
            pred = model(x[i : i + batch], tokens, _token_mask(part[r], keep.expand(len(r), -1)), r)
            total += float(F.mse_loss(pred, y[i : i + batch], reduction="sum"))
    return total / max(len(y), 1)


def train_prompt_model(data: FieldData, options: PromptTrainOptions, device: torch.device | None = None) -> TensorBundle:
    """The generic prompt model, trained on ``options.source``'s training raters (see the module docstring),
    on ``device`` (the CPU by default; batches and part dropout are drawn on the CPU).

    Returns its state dict with meta ``config`` (rebuilds :class:`PromptFusion`), ``source``, ``template``,
    ``val_loss`` (full prompts, the selected epoch), ``val_loss_by_contents`` (every subset of parts),
    ``best_epoch`` and counts.
    """
    o = options
    seed = data.seed if o.seed is None else o.seed
    t0 = time.perf_counter()
    prof_cols = ["source", "rater_id", *[c for p in PARTS for c in _COLUMNS[p]]]
    table = data.ratings.filter(pl.col("source") == o.source).join(
        data.profiles.select(prof_cols), on=["source", "rater_id"], how="inner"
    ).sort("split", "rater_id", "image_id")
    if table.filter(pl.col("split") == "train").is_empty():
        raise ValueError(f"train_prompt_model: no training rating of a rater with a profile for source {o.source!r}")
    raters = sorted(table["rater_id"].unique().to_list())
    by_id = {r["rater_id"]: r for r in data.profiles.filter(pl.col("source") == o.source).iter_rows(named=True)}
    tokens, part = _rater_prompts([by_id[r] for r in raters])
    t_encode = time.perf_counter() - t0
    pos = {r: i for i, r in enumerate(raters)}

    def arrays(split: str):
        t = table.filter(pl.col("split") == split)
        x = data.features[data.rows(t["image_id"].to_list())].float()
        y = torch.tensor(t["score_template"].to_numpy(), dtype=torch.float32)
        return x, y, torch.as_tensor([pos[r] for r in t["rater_id"].to_list()], dtype=torch.long)

    dev = torch.device(device or "cpu")
    x_tr, y_tr, r_tr = (t.to(dev) for t in arrays("train"))
    x_va, y_va, r_va = (t.to(dev) for t in arrays("val"))
    tokens, part = tokens.to(dev), part.to(dev)
    template = SCALES[o.source].template
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))  # the initialisation and the network's dropout
        model = PromptFusion(x_tr.shape[1], TEXT_DIM, o.width, o.heads, o.ffn_mult, o.hidden, o.dropout, o.head,
                             template, center=float(y_tr.mean()) if o.head == "scalar" else 0.0,
                             image_dropout=o.image_dropout).to(dev)
        opt = adamw(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        best, best_state, best_epoch = float("inf"), None, -1
        for epoch in range(o.epochs):
            model.train()
            for b in _rater_batches(r_tr.cpu(), o.batch_size, o.rater_group, gen):
                keep = (torch.rand(len(b), len(PARTS), generator=gen) >= o.part_dropout).to(dev)
                b = b.to(dev)
                pred = model(x_tr[b], tokens, _token_mask(part[r_tr[b]], keep), r_tr[b])
                loss = F.mse_loss(pred, y_tr[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            val = _val_loss(model, x_va, y_va, r_va, tokens, part, PARTS) if len(y_va) else float("nan")
            log.info("prompt model: epoch %d, val MSE %.4f", epoch, val)
            if not len(y_va) or val < best:
                best, best_state, best_epoch = val, copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    model.eval()
    by_contents = {}
    if len(y_va):
        for n in range(len(PARTS) + 1):
            for sub in combinations(PARTS, n):
                by_contents[_subset_name(sub)] = _val_loss(model, x_va, y_va, r_va, tokens, part, sub)
    log.info("prompt model: %d raters, %d train / %d val ratings, %.1f s (%.1f s encoding); val MSE by contents %s",
             len(raters), len(y_tr), len(y_va), time.perf_counter() - t0, t_encode, by_contents)
    meta = {
        "config": model.config(), "source": o.source, "template": template, "parts": list(PARTS),
        "text_encoder": PACKAGE, "part_dropout": o.part_dropout, "seed": int(seed),
        "val_loss": best if len(y_va) else None, "val_loss_by_contents": by_contents, "best_epoch": best_epoch,
        "n_raters": len(raters), "n_train": len(y_tr), "n_val": len(y_va),
    }
    return TensorBundle({k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}, meta)


# --------------------------------------------------------------------------- the method

_MODELS: dict[int, tuple[TensorBundle, PromptFusion]] = {}  # this process's models, by id of their bundle


def _model(ctx: Context, artifact: str) -> PromptFusion:
    bundle = ctx.artifacts.get(artifact)
    if bundle is None:
        raise KeyError(f"aesmamba_p: the context has no artifact {artifact!r} (train_prompt_model's bundle); "
                       f"artifacts: {sorted(ctx.artifacts)}")
    hit = _MODELS.get(id(bundle))
    if hit is None or hit[0] is not bundle:
        hit = _MODELS[id(bundle)] = (bundle, model_from_bundle(bundle))
    return hit[1]


def _features(ctx: Context, rows: torch.Tensor) -> torch.Tensor:
    if ctx.features is None:
        raise ValueError("aesmamba_p: this context has no backbone features (ctx.features is None)")
    return ctx.features[rows].float()


class AesMambaPOptions(Options):
    contents: tuple[Part, ...] = PARTS  # the prompt's parts (any subset; () = no prompt, the null token only)
    fine_tune_steps: int = Field(default=0, ge=0)  # 0: zero-shot (the prompt only); > 0: full-batch steps on the head
    fine_tune_loss: Literal["rank", "mse"] = "rank"  # Bradley–Terry on the support (as task_vectors) or MSE
    fine_tune_lr: float = Field(default=1e-2, gt=0)  # AdamW, no weight decay
    fine_tune_layers: Literal["last", "head"] = "last"  # the head's last layer (hidden × 10 + 10 weights) or all of it
    artifact: str = ARTIFACT  # the trained model's name in ctx.artifacts

    @field_validator("contents", mode="before")
    @classmethod
    def _order(cls, v):
        return canonical_contents(v)


def _prompt_state(sentences: Sequence[str]) -> torch.Tensor:
    return torch.tensor(list("\n".join(sentences).encode("utf-8")), dtype=torch.uint8)


def state_sentences(state: State) -> list[str]:
    """The prompt's sentences a fitted state holds."""
    text = bytes(state["prompt"].tolist()).decode("utf-8")
    return text.split("\n") if text else []


@register("aesmamba_p")
class AesMambaP(Method):
    """The person's prompt read by the generic prompt model; optionally its head fine-tuned on the support.

    The state is ``{"prompt": uint8}`` (the sentences, UTF-8, one per line), plus ``head.<name>``
    tensors for the fine-tuned head weights.
    """

    Options = AesMambaPOptions
    generic_model = GenericModel(PromptTrainOptions, train_prompt_model)
    ablation = "the prompt's contents"
    needs_profile = True
    heavy = True  # the fine-tuned variant; the zero-shot one is a few milliseconds per person (light, see __init__)

    def __init__(self, options: AesMambaPOptions | None = None):
        super().__init__(options)
        self.heavy = self.options.fine_tune_steps > 0

    def _sentences(self, support: Support, ctx: Context) -> list[str]:
        profile = ctx.profiles.get((support.source, support.rater_id))
        if profile is None:
            raise KeyError(f"aesmamba_p: no profile for {support.source}:{support.rater_id}")
        return prompt_parts(profile, self.options.contents)

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        """Encode every planned person's sentences once, here (workers then never load the encoder)."""
        shared = ctx.shared.setdefault(SHARED_KEY, {})
        planned = [s for s in supports if (s.source, s.rater_id) in ctx.profiles]
        shared.update(encode_sentences([t for s in planned for t in self._sentences(s, ctx)], shared))

    def fit(self, support: Support, ctx: Context) -> State:
        o = self.options
        sentences = self._sentences(support, ctx)
        state = {"prompt": _prompt_state(sentences)}
        if o.fine_tune_steps == 0:
            return state
        model = _model(ctx, o.artifact)
        tokens = prompt_tokens(sentences, ctx.shared.get(SHARED_KEY))
        x = _features(ctx, support.rows)
        k = len(x)
        with torch.no_grad():
            fused = model.fuse(x, tokens[None], torch.ones(k, len(tokens), dtype=torch.bool), torch.zeros(k, dtype=torch.long))
        head = copy.deepcopy(model.head).eval()
        train = [p for n, p in head.named_parameters() if o.fine_tune_layers == "head" or n.startswith("fc2.")]
        for p in train:
            p.requires_grad_(True)
        opt = adamw(train, lr=o.fine_tune_lr)
        gen = torch.Generator().manual_seed(int(support.seed))
        p_drop = float(head.drop.p)
        y = support.y.float()
        target = SCALES[support.source].template
        with torch.enable_grad():
            for _ in range(o.fine_tune_steps):
                mask = None
                if p_drop > 0:
                    mask = (torch.rand(k, head.hidden, generator=gen) >= p_drop).float() / (1.0 - p_drop)
                pred = retemplate(model.to_scores(head.logits(fused, mask)), model.template, target)
                loss = person_loss(o.fine_tune_loss)(pred, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        state |= {f"head.{n}": p.detach().clone() for n, p in head.named_parameters() if p.requires_grad}
        return state

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        model = _model(ctx, self.options.artifact)
        tokens = prompt_tokens(state_sentences(state), ctx.shared.get(SHARED_KEY))
        x = _features(ctx, query.rows)
        head = model.head
        tuned = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
        if tuned:
            head = copy.deepcopy(model.head)
            head.load_state_dict(tuned, strict=False)
        with torch.inference_mode():
            fused = model.fuse(x, tokens[None], torch.ones(len(x), len(tokens), dtype=torch.bool),
                               torch.zeros(len(x), dtype=torch.long))
            scores = model.to_scores(head.eval().logits(fused))
        return retemplate(scores.double().cpu().numpy(), model.template, SCALES[query.source].template)
