"""Two-stage expert fine-tuning with checkpoints that resume exactly.

Stage 1 trains the head on backbone features computed once (the backbone is
frozen, so running it at every step would only repeat the same work). Stage 2
fine-tunes the whole scorer on augmented views from the image cache, with the
batch-norm statistics frozen at θ0's values so that experts stay mergeable.
Both stages use AdamW with cosine schedules, select the step with the lowest
validation loss, and stop early when validation stops improving.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from aestimo.datasets.safetensors_dataset import TensorBundle, load_bundle, save_bundle
from aestimo.imagecache import center_view, to_float, train_view
from aestimo.losses import expert_loss, nearest_bin
from aestimo.models.scorer import freeze_bn_stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageConfig:
    steps: int
    batch_size: int
    lr_head: tuple[float, float]
    lr_backbone: tuple[float, float] = (0.0, 0.0)
    weight_decay: float = 0.01
    eval_every: int = 50
    patience: int = 10  # evaluations without improvement before stopping; 0 = never stop early
    checkpoint_every: int = 50
    w_mse: float = 10.0
    w_bal: float = 0.001  # 0 disables the Bal-CE auxiliary term


@dataclass
class Labels:
    """Targets of one split on the template scale: score, distribution (NaN rows where none)."""

    score: torch.Tensor  # (N,)
    dist: torch.Tensor  # (N, 10), NaN rows where the source has no histogram

    @property
    def has_dist(self) -> torch.Tensor:
        return ~torch.isnan(self.dist).any(dim=1)

    def subset(self, idx: torch.Tensor) -> Labels:
        return Labels(self.score[idx], self.dist[idx])


class Interrupted(RuntimeError):
    """Raised by ``stop_after`` in tests to simulate a run killed mid-training."""


def cosine_lr(step: int, total: int, start: float, end: float) -> float:
    t = min(step, total) / max(total, 1)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t))


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
        class_prior=prior if cfg.w_bal > 0 else None,
        w_mse=cfg.w_mse,
        w_bal=cfg.w_bal,
    )


# --------------------------------------------------------------------------- checkpoints


def _flatten_state(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in state.items()}


def _unflatten(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "/"
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def save_checkpoint(path: Path, model, optimizer, best_state, step, gen, meta) -> None:
    tensors = _flatten_state("model", model.state_dict())
    tensors.update(_flatten_state("best", best_state))
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for name, value in st.items():
            tensors[f"opt/{idx}/{name}"] = torch.as_tensor(value)
    tensors["rng/generator"] = gen.get_state()
    tensors["rng/torch"] = torch.get_rng_state()
    meta = dict(meta, step=step, param_groups=opt["param_groups"])
    save_bundle(TensorBundle(tensors, meta), path)


def load_checkpoint(b: TensorBundle, model, optimizer, gen) -> tuple[dict, int, dict]:
    """Restore model, optimizer and RNG state from a checkpoint bundle."""
    model.load_state_dict(_unflatten("model", b.tensors))
    state: dict[int, dict] = {}
    for k, v in b.tensors.items():
        if k.startswith("opt/"):
            _, idx, name = k.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": b.meta["param_groups"]})
    gen.set_state(b.tensors["rng/generator"])
    torch.set_rng_state(b.tensors["rng/torch"])
    return _unflatten("best", b.tensors), int(b.meta["step"]), b.meta


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
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Generic AdamW loop over ``steps`` with cosine schedules per group, validation,
    early stopping, best-state selection and exact resume from ``checkpoint``.

    A checkpoint is only resumed when it was written by the same configuration
    and seed (its fingerprint matches); otherwise training starts afresh.
    """
    fingerprint = json.dumps([repr(cfg), seed, n_train, desc])
    optimizer = torch.optim.AdamW(param_groups, lr=param_groups[0]["lr"], weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    start, history, best_val, bad = 0, [], float("inf"), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved = load_bundle(checkpoint) if checkpoint is not None and checkpoint.exists() else None
    if saved is not None and saved.meta.get("fingerprint") != fingerprint:
        log.warning("%s: ignoring checkpoint %s written by another configuration", desc, checkpoint)
    elif saved is not None:
        best_state, start, meta = load_checkpoint(saved, model, optimizer, gen)
        history, best_val, bad = meta["history"], meta["best_val"], meta["bad"]
        log.info("%s: resumed from %s at step %d", desc, checkpoint, start)
    set_train = train_mode or model.train
    step = start
    for step in tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, leave=False):
        if bad >= cfg.patience > 0:
            log.info("%s: early stop at step %d (no val improvement in %d evaluations)", desc, step, bad)
            break
        for g in optimizer.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, *g["lr_range"])
        set_train()
        idx = torch.randint(0, n_train, (min(cfg.batch_size, n_train),), generator=gen)
        loss = batch_fn(idx, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
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
    return best_state, history


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
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Stage 1: the head alone, on cached backbone features."""
    prior = class_prior(y_train, template)

    def batch(idx, gen):
        probs, logits = head.forward_with_logits(feats_train[idx])
        return _loss(probs, logits, y_train.subset(idx), template, prior, cfg)

    @torch.no_grad()
    def val():
        probs, logits = head.forward_with_logits(feats_val)
        return float(_loss(probs, logits, y_val, template, prior, cfg))

    groups = [{"params": list(head.parameters()), "lr": cfg.lr_head[0], "lr_range": cfg.lr_head}]
    return _fit(head, groups, batch, val, len(feats_train), cfg, seed, checkpoint, desc, stop_after)


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
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Stage 2: the whole scorer, on random crops and flips from the uint8 cache."""
    prior = class_prior(y_train, template)
    x_val = to_float(center_view(pixels_val, crop), *norm)

    def batch(idx, gen):
        x = to_float(train_view(pixels_train[idx], crop, gen), *norm)
        probs, logits = scorer.forward_with_logits(x)
        return _loss(probs, logits, y_train.subset(idx), template, prior, cfg)

    @torch.no_grad()
    def val():
        losses = []
        for i in range(0, len(x_val), 128):
            probs, logits = scorer.forward_with_logits(x_val[i : i + 128])
            losses.append(_loss(probs, logits, y_val.subset(torch.arange(i, min(i + 128, len(x_val)))), template, prior, cfg) * len(probs))
        return float(sum(losses) / max(len(x_val), 1))

    def train_mode():
        scorer.train()
        freeze_bn_stats(scorer)

    groups = [
        {"params": list(scorer.head.parameters()), "lr": cfg.lr_head[0], "lr_range": cfg.lr_head},
        {"params": list(scorer.backbone.parameters()), "lr": cfg.lr_backbone[0], "lr_range": cfg.lr_backbone},
    ]
    return _fit(scorer, groups, batch, val, len(pixels_train), cfg, seed, checkpoint, desc, stop_after, train_mode)
