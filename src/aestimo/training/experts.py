"""Two-stage expert fine-tuning with checkpoints that resume exactly.

Stage 1 trains the head on backbone features computed once (the backbone is
frozen, so running it at every step would only repeat the same work). Stage 2
fine-tunes the whole scorer on augmented views from the image store, with the
batch-norm statistics frozen at θ0's values so that experts stay mergeable.
Both stages use AdamW with cosine schedules, select the step with the lowest
validation loss, and stop early when validation stops improving.

Training runs on the device the model sits on. Random draws (batches, crops,
flips, TFA's pairs) come from one CPU generator, so every device draws the same
batches; each batch is read from the store (or the feature table) by its rows
and moved to the device, validation runs in blocks, and nothing copies a whole
split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import torch
from pydantic import Field
from tqdm.auto import tqdm

from aestimo import device as devices
from aestimo.bundle import load_bundle
from aestimo.data.images import center_view, to_float, train_view
from aestimo.data.loading import apply_views, blocks, draw_plan, training_views
from aestimo.evaluation.metrics import segment_metrics
from aestimo.models.scorer import freeze_bn_stats
from aestimo.options import Options
from aestimo.training.checkpoints import digest, load_checkpoint, load_finished, save_checkpoint, save_finished
from aestimo.training.data import Labels
from aestimo.training.long_tail import LongTailOptions, flsa_loss, tail_mixup
from aestimo.training.losses import expert_loss, nearest_bin
from aestimo.training.pseudo_labels import PseudoLabels
from aestimo.training.schedule import cosine_lr
from aestimo.training.optim import adamw

log = logging.getLogger(__name__)


class LossWeights(Options):
    """EMD + w_mse·MSE where a histogram exists, MSE otherwise, + w_bal·Bal-CE (0 disables it)."""

    w_mse: float = Field(default=10.0, ge=0)
    w_bal: float = Field(default=0.001, ge=0)


class StageConfig(Options):
    """One training stage: AdamW with a cosine schedule per parameter group, validation every
    ``eval_every`` steps, early stopping after ``patience`` evaluations without improvement
    (0 = never), a resumable checkpoint every ``checkpoint_every`` steps."""

    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr_head: tuple[float, float]
    lr_backbone: tuple[float, float] = (0.0, 0.0)
    weight_decay: float = Field(default=0.01, ge=0)
    eval_every: int = Field(default=50, ge=1)
    patience: int = Field(default=0, ge=0)
    checkpoint_every: int = Field(default=50, ge=1)
    loss: LossWeights = LossWeights()
    long_tail: LongTailOptions = LongTailOptions()


class Interrupted(RuntimeError):
    """Raised by ``stop_after`` in tests to simulate a run killed mid-training."""


def class_prior(labels: Labels, template: torch.Tensor) -> torch.Tensor:
    """Frequency of each template bin among the training targets (for Bal-CE), floored."""
    bins = nearest_bin(labels.score, template)
    counts = torch.bincount(bins, minlength=len(template)).float() + 1.0
    return counts / counts.sum()


def _loss(probs, logits, y: Labels, template, prior, cfg: StageConfig) -> torch.Tensor:
    """EMD + w_mse·MSE where a histogram exists, MSE otherwise, + w_bal·Bal-CE on the head's bin logits."""
    return expert_loss(
        probs,
        logits,
        y.score,
        y.dist,
        template,
        class_prior=prior if cfg.loss.w_bal > 0 else None,
        w_mse=cfg.loss.w_mse,
        w_bal=cfg.loss.w_bal,
    )


def _batch_loss(head, feats, y: Labels, template, prior, cfg: StageConfig, gen: torch.Generator) -> torch.Tensor:
    """The expert loss of a batch of features, with TFA's mixed samples appended and FLSA's
    term added where the stage's ``long_tail`` options ask for them (plain training otherwise)."""
    lt = cfg.long_tail
    real = len(feats)
    feats_all, y_all = tail_mixup(feats, y, template, lt, gen) if lt.tfa else (feats, y)
    probs, logits, hidden = head.parts(feats_all)
    loss = _loss(probs, logits, y_all, template, prior, cfg)
    if lt.flsa > 0:
        loss = loss + lt.flsa * flsa_loss(hidden[:real], y.score)
    return loss


# --------------------------------------------------------------------------- the loop


def _fit(
    model: torch.nn.Module,
    param_groups: list[dict],
    batch_fn: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    val_fn: Callable[[], float],
    n_train: int,
    cfg: StageConfig,
    seed: int,
    checkpoint: Path | None,
    desc: str,
    stop_after: int | None = None,
    train_mode: Callable[[], None] | None = None,
    inputs: str = "",
    precision: devices.Precision = "fp32",
    draws: Callable[[torch.Generator], Iterator] | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Generic AdamW loop over ``steps`` with cosine schedules per group, validation,
    early stopping, best-state selection and exact resume from ``checkpoint``.

    ``draws(gen)`` gives each step's input to ``batch_fn`` (by default the rows of a random
    batch, drawn from ``gen`` as the step starts; :func:`_planned_views` reads them ahead).

    A checkpoint is only used when it was written by the same configuration,
    seed, starting weights and data (its fingerprint matches: ``inputs`` is a
    digest of the data); otherwise training starts afresh. A finished stage's
    checkpoint holds its result, which a rerun returns without training.
    """
    fingerprint = json.dumps([repr(cfg), seed, n_train, desc, digest(model.state_dict()), inputs])
    optimizer = adamw(param_groups, lr=param_groups[0]["lr"], weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    start, history, best_val, bad = 0, [], float("inf"), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved = load_bundle(checkpoint) if checkpoint is not None and checkpoint.exists() else None
    if saved is not None and saved.meta.get("fingerprint") != fingerprint:
        log.warning("%s: ignoring checkpoint %s written by another configuration", desc, checkpoint)
    elif saved is not None and saved.meta.get("finished"):
        log.info("%s: reusing the finished result in %s (same inputs and configuration)", desc, checkpoint)
        return load_finished(saved), saved.meta["history"]
    elif saved is not None:
        best_state, start, meta = load_checkpoint(saved, model, optimizer, gen)
        history, best_val, bad = meta["history"], meta["best_val"], meta["bad"]
        log.info("%s: resumed from %s at step %d", desc, checkpoint, start)
    set_train = train_mode or model.train
    dev = devices.of(model)
    scaler = devices.grad_scaler(dev, precision)
    step = start
    stream = (draws or _random_rows(n_train, cfg.batch_size))(gen)
    for step in tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, leave=False):
        if bad >= cfg.patience > 0:
            log.info("%s: early stop at step %d (no val improvement in %d evaluations)", desc, step, bad)
            break
        for g in optimizer.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, *g["lr_range"])
        set_train()
        item = next(stream)
        with devices.autocast(dev, precision):
            loss = batch_fn(item, gen)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            model.eval()
            val = val_fn()
            history.append({"step": done, "train_loss": float(loss.detach()), "val_loss": val})
            if val < best_val - 1e-6:
                best_val, bad = val, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_checkpoint(
                checkpoint, model, optimizer, best_state, done, gen, {"history": history, "best_val": best_val, "bad": bad, "fingerprint": fingerprint},
            )
        if stop_after is not None and done >= stop_after:
            raise Interrupted(f"stopped after step {done}")
    model.eval()
    if checkpoint is not None:
        save_finished(checkpoint, best_state, {"history": history, "fingerprint": fingerprint})
    return best_state, history


def _random_rows(n_train: int, batch: int) -> Callable[[torch.Generator], Iterator[torch.Tensor]]:
    """Each step's batch: ``batch`` rows drawn from ``gen`` with replacement, as the step starts."""

    def stream(gen: torch.Generator) -> Iterator[torch.Tensor]:
        while True:
            yield torch.randint(0, n_train, (min(batch, n_train),), generator=gen)

    return stream


def _planned_views(pixels, n_train: int, batch: int, crop: int, workers: int, pin: bool) -> Callable[[torch.Generator], Iterator]:
    """Each step's ``(plan, uint8 views)``: the rows, crops and flips drawn from ``gen`` in the
    same order as :func:`_random_rows` then :func:`~aestimo.data.images.train_view`, read here
    (``workers`` 0) or ahead by that many DataLoader workers (the same batches either way)."""

    def here(gen: torch.Generator) -> Iterator:
        while True:
            plan = draw_plan(n_train, batch, tuple(pixels.shape), crop, gen)
            yield plan, apply_views(pixels[plan.idx], crop, plan.tops, plan.lefts, plan.flips)

    def ahead(gen: torch.Generator) -> Iterator:
        return training_views(pixels, n_train, batch, crop, gen, workers, pin)

    return ahead if workers > 0 else here


def train_head(
    head: torch.nn.Module,
    feats_train: torch.Tensor,
    y_train: Labels,
    feats_val: torch.Tensor,
    y_val: Labels,
    template: torch.Tensor,
    cfg: StageConfig,
    seed: int,
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    desc: str = "stage 1 (head)",
    precision: devices.Precision = "fp32",
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Stage 1: the head alone, on cached backbone features (``feats_train`` a tensor or lazy rows
    of the feature table)."""
    dev = devices.of(head)
    prior = class_prior(y_train, template).to(dev)
    template_d = template.to(dev)

    def batch(idx, gen):
        return _batch_loss(head, devices.to(feats_train[idx], dev), y_train.subset(idx).to(dev), template_d, prior, cfg, gen)

    @torch.no_grad()
    def val():
        probs, logits = head.forward_with_logits(devices.to(feats_val, dev))
        return float(_loss(probs, logits, y_val.to(dev), template_d, prior, cfg))

    groups = [{"params": list(head.parameters()), "lr": cfg.lr_head[0], "lr_range": cfg.lr_head}]
    inputs = digest(feats_train, y_train.score, y_train.dist, feats_val, y_val.score, y_val.dist, template)
    return _fit(head, groups, batch, val, len(feats_train), cfg, seed, checkpoint, desc, stop_after, inputs=inputs,
                precision=precision)


def finetune(
    scorer: torch.nn.Module,
    pixels_train: torch.Tensor,
    y_train: Labels,
    pixels_val: torch.Tensor,
    y_val: Labels,
    template: torch.Tensor,
    crop: int,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    cfg: StageConfig,
    seed: int,
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    desc: str = "stage 2 (whole model)",
    precision: devices.Precision = "fp32",
    loader_workers: int = 0,
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Stage 2: the whole scorer, on random crops and flips from the uint8 store (``pixels_train``
    and ``pixels_val`` tensors or lazy rows of the store), read by ``loader_workers`` DataLoader
    processes where that is more than 0 (the same batches, so the same weights)."""
    dev = devices.of(scorer)
    prior = class_prior(y_train, template).to(dev)
    template_d = template.to(dev)

    def batch(item, gen):
        plan, views = item
        x = to_float(devices.to(views, dev), *norm)
        return _batch_loss(scorer.head, scorer.features(x), y_train.subset(plan.idx).to(dev), template_d, prior, cfg, gen)

    if loader_workers > 0 and cfg.long_tail.tfa:
        log.info("%s: TFA draws from the batch generator inside the step: batches are read here, not by loader workers", desc)
        loader_workers = 0
    draws = _planned_views(pixels_train, len(pixels_train), cfg.batch_size, crop, loader_workers, dev.type == "cuda")
    inputs = digest(pixels_train, y_train.score, y_train.dist, pixels_val, y_val.score, y_val.dist, template, crop, norm)
    val = _val_loss(scorer, _val_views(pixels_val, crop, norm, dev, loader_workers), y_val.to(dev), template_d, prior, cfg)
    return _fit(scorer, _whole_model_groups(scorer, cfg), batch, val, len(pixels_train),
                cfg, seed, checkpoint, desc, stop_after, _bn_frozen_train_mode(scorer), inputs, precision, draws)


#: validation images per forward pass
VAL_BATCH = 128


def _val_views(pixels, crop: int, norm, dev: torch.device, workers: int = 0) -> Callable[[], Iterator[torch.Tensor]]:
    """The validation split's evaluation views, block by block on ``dev`` (never all at once),
    read by ``workers`` DataLoader processes where that is more than 0."""

    def views() -> Iterator[torch.Tensor]:
        for block in blocks(pixels, VAL_BATCH, workers, dev.type == "cuda"):
            yield to_float(center_view(devices.to(block, dev), crop), *norm)

    return views


def _val_loss(scorer, views: Callable[[], Iterator[torch.Tensor]], y_val: Labels, template, prior, cfg: StageConfig) -> Callable[[], float]:
    """The plain expert loss on the validation views (the long-tail modules are training-time only)."""

    @torch.no_grad()
    def val() -> float:
        losses, i = [], 0
        for x in views():
            probs, logits = scorer.forward_with_logits(x)
            rows = torch.arange(i, i + len(x), device=x.device)
            losses.append(_loss(probs, logits, y_val.subset(rows), template, prior, cfg) * len(probs))
            i += len(x)
        return float(sum(losses) / max(i, 1))

    return val


def _bn_frozen_train_mode(scorer) -> Callable[[], None]:
    def train_mode() -> None:
        scorer.train()
        freeze_bn_stats(scorer)

    return train_mode


def _whole_model_groups(scorer, cfg: StageConfig) -> list[dict]:
    return [
        {"params": list(scorer.head.parameters()), "lr": cfg.lr_head[0], "lr_range": cfg.lr_head},
        {"params": list(scorer.backbone.parameters()), "lr": cfg.lr_backbone[0], "lr_range": cfg.lr_backbone},
    ]


def self_train(
    scorer: torch.nn.Module,
    pixels_train: torch.Tensor,
    y_train: Labels,
    pixels_pool: torch.Tensor,
    pseudo: PseudoLabels | None,
    pixels_val: torch.Tensor,
    y_val: Labels,
    template: torch.Tensor,
    crop: int,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    cfg: StageConfig,
    seed: int,
    checkpoint: Path | None = None,
    desc: str = "self-training round",
    select_by: str = "balanced_mae",
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """One more round of whole-model training from a trained expert: each step a labelled batch
    and, where ``pseudo`` is given, as many images drawn from the **kept** pseudo-labels of
    ``pixels_pool`` (the indicator-weighted unlabelled loss: a discarded pseudo-label weighs 0, a
    kept one as much as a labelled image), targets their sharpened distributions; TFA and FLSA as
    ``cfg.long_tail`` says (TFA mixes across the whole batch). Without ``pseudo`` it is the
    same round on labelled images alone (the control). The step kept is the one with the lowest
    ``select_by`` on the validation split: ``balanced_mae`` (the mean of the low / middle / high
    segments' MAE: the long tail's own objective) or ``loss`` (the plain expert loss)."""
    dev = devices.of(scorer)
    prior = class_prior(y_train, template).to(dev)
    template_d = template.to(dev)
    kept = torch.nonzero(pseudo.keep).squeeze(1) if pseudo is not None else torch.empty(0, dtype=torch.long)
    y_pool = Labels(pseudo.score.float(), pseudo.dist.float()) if pseudo is not None else None

    def batch(idx, gen):
        x = to_float(devices.to(train_view(pixels_train[idx], crop, gen), dev), *norm)
        y = y_train.subset(idx)
        if len(kept):
            u = kept[torch.randint(0, len(kept), (len(idx),), generator=gen)]
            x = torch.cat([x, to_float(devices.to(train_view(pixels_pool[u], crop, gen), dev), *norm)])
            y = Labels(torch.cat([y.score, y_pool.score[u]]), torch.cat([y.dist, y_pool.dist[u]]))
        return _batch_loss(scorer.head, scorer.features(x), y.to(dev), template_d, prior, cfg, gen)

    views = _val_views(pixels_val, crop, norm, dev)
    if select_by == "loss":
        val = _val_loss(scorer, views, y_val.to(dev), template_d, prior, cfg)
    else:
        val = _val_balanced_mae(scorer, views, y_val, template_d)
    parts = [pixels_train, y_train.score, y_train.dist, pixels_val, y_val.score, y_val.dist, template, crop, norm, select_by]
    if pseudo is not None:
        parts += [pixels_pool, pseudo.score, pseudo.dist, pseudo.keep]
    return _fit(scorer, _whole_model_groups(scorer, cfg), batch, val, len(pixels_train),
                cfg, seed, checkpoint, desc, None, _bn_frozen_train_mode(scorer), digest(*parts))


def _val_balanced_mae(scorer, views: Callable[[], Iterator[torch.Tensor]], y_val: Labels, template) -> Callable[[], float]:
    """The mean of the low / middle / high segments' MAE on the validation views (segments of the true scores)."""
    @torch.no_grad()
    def val() -> float:
        pred = torch.cat([scorer(x) for x in views()]) @ template
        rows = [r["mae"] for r in segment_metrics(y_val.score.numpy(), pred.cpu().numpy()) if r["segment"] != "all" and r["n"]]
        return float(sum(rows) / len(rows))

    return val


def history_table(history: list[dict], stage) -> pl.DataFrame:
    """A training loop's validation history (step, train and validation loss) as a table, tagged with its stage."""
    schema = {"step": pl.Int64, "train_loss": pl.Float64, "val_loss": pl.Float64}
    return pl.DataFrame(history, schema=schema).with_columns(pl.lit(stage).alias("stage"))
