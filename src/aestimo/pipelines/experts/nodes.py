"""Nodes of the ``experts`` pipeline (thin: the work is in :mod:`aestimo.models`, :mod:`aestimo.training`
and :mod:`aestimo.evaluation.experts`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

from aestimo import config  # noqa: E402
from aestimo.bundle import BundleWriter, TensorBundle  # noqa: E402
from aestimo.data.images import Rows, build_store, pixels_of, rows_of  # noqa: E402
from aestimo.data.scales import SCALES  # noqa: E402
from aestimo.evaluation.experts import cross_source_metrics, predictions_table  # noqa: E402
from aestimo.models.inference import embed, predict  # noqa: E402
from aestimo.models.scorer import template_tensor  # noqa: E402
from aestimo.models.theta0 import load_scorer, make_theta0, normalisation  # noqa: E402
from aestimo.training.data import source_splits  # noqa: E402
from aestimo.training.experts import finetune, history_table, train_head  # noqa: E402

log = logging.getLogger(__name__)


def _params(params: dict[str, Any]) -> config.ExpertsParams:
    p = config.parse("experts", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    return p


def build_image_cache(images: pl.DataFrame, generic_splits: pl.DataFrame, params: dict[str, Any]) -> TensorBundle:
    """Decode every image the experts or the held-out people use, once, at ``cache_size``, into the
    image store on disk (written in place on every core; later nodes map it)."""
    p = _params(params)
    used = images.join(generic_splits.select("image_id"), on="image_id", how="semi").sort("image_id")
    ids = used["image_id"].to_list()
    store = build_store(ids, used["path"].to_list(), p.cache_size, p.store_dir, p.decode_workers)
    log.info("image store: %d images at %d px (%.1f MB on disk)", len(ids), p.cache_size, store["pixels"].numel() / 2**20)
    return store


def build_theta0(params: dict[str, Any]) -> TensorBundle:
    """θ0: pretrained backbone + a head from ``head_seed``, shared by all experts."""
    p = _params(params)
    return make_theta0(p.backbone, p.weights, p.head_seed, p.allow_random, p.input_size, p.cache_size,
                       model_kwargs=p.model_kwargs)


def compute_backbone_features(theta0: TensorBundle, image_cache: TensorBundle, params: dict[str, Any]) -> TensorBundle:
    """θ0's backbone features of every stored image, computed once for stage 1 and written block by
    block into a table on disk (mapped when read)."""
    p = _params(params)
    scorer = load_scorer(theta0).to(p.torch_device)
    pixels = pixels_of(image_cache)
    specs = {"features": (torch.float32, (len(pixels), scorer.embed_dim))}
    with BundleWriter(p.store_dir, specs, {"image_ids": image_cache.meta["image_ids"]}) as writer:
        embed(scorer, pixels, theta0.meta["input_size"], normalisation(theta0), out=writer.rows("features"), precision=p.precision,
              loader_workers=p.loader_workers)
    return writer.bundle


def _checkpoint(p: config.ExpertsParams, source: str, stage: str) -> Path:
    """Where a stage resumes from, and where its finished result waits for a rerun with the same inputs."""
    return Path(p.checkpoint_dir) / f"{source}_{stage}.safetensors"


def train_expert_head(
    source: str,
    theta0: TensorBundle,
    backbone_features: TensorBundle,
    generic_scores: pl.DataFrame,
    generic_splits: pl.DataFrame,
    params: dict[str, Any],
) -> tuple[TensorBundle, pl.DataFrame]:
    """Stage 1: θ0's head trained on the source's labels over cached features."""
    p = _params(params)
    data = source_splits(source, generic_scores, generic_splits, backbone_features.meta["image_ids"])
    feats = rows_of(backbone_features, "features")  # the training and validation rows, read from the table's file
    scorer = load_scorer(theta0).to(p.torch_device)
    template = template_tensor(SCALES[source].template)
    best, history = train_head(
        scorer.head,
        Rows(feats, data["train"].rows),
        data["train"].labels,
        feats[data["val"].rows],
        data["val"].labels,
        template,
        p.stage("stage1"),
        seed=p.seed,
        checkpoint=_checkpoint(p, source, "stage1"),
        desc=f"{source} stage 1",
        precision=p.precision,
    )
    return TensorBundle(best, {"source": source, "stage": 1}), history_table(history, 1)


def finetune_expert(
    source: str,
    theta0: TensorBundle,
    expert_head: TensorBundle,
    image_cache: TensorBundle,
    generic_scores: pl.DataFrame,
    generic_splits: pl.DataFrame,
    params: dict[str, Any],
) -> tuple[TensorBundle, pl.DataFrame]:
    """Stage 2: the whole scorer fine-tuned from θ0's backbone and the stage-1 head."""
    p = _params(params)
    data = source_splits(source, generic_scores, generic_splits, image_cache.meta["image_ids"])
    state = dict(theta0.tensors)
    state.update({f"head.{k}": v for k, v in expert_head.tensors.items()})
    scorer = load_scorer(theta0, state).to(p.torch_device)
    pixels = pixels_of(image_cache)
    best, history = finetune(
        scorer,
        Rows(pixels, data["train"].rows),
        data["train"].labels,
        Rows(pixels, data["val"].rows),
        data["val"].labels,
        template_tensor(SCALES[source].template),
        crop=p.input_size,
        norm=normalisation(theta0),
        cfg=p.stage("stage2"),
        seed=p.seed,
        checkpoint=_checkpoint(p, source, "stage2"),
        desc=f"{source} stage 2",
        precision=p.precision,
        loader_workers=p.loader_workers,
    )
    return TensorBundle(best, {"source": source, "stage": 2}), history_table(history, 2)


def plot_expert_curves(source: str, stage1: pl.DataFrame, stage2: pl.DataFrame) -> plt.Figure:
    """Train and validation loss per stage."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, h, title in zip(axes, (stage1, stage2), ("stage 1: head on cached features", "stage 2: whole model")):
        ax.plot(h["step"], h["train_loss"], label="train (batch)", color="#999999")
        ax.plot(h["step"], h["val_loss"], label="validation", color="#c44e52", marker="o", ms=3)
        if h.height:
            best = h.sort("val_loss").row(0, named=True)
            ax.axvline(best["step"], ls="--", color="#c44e52", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    fig.suptitle(f"expert '{source}'")
    fig.tight_layout()
    return fig


# The images downstream nodes read expert scores of: every source's test split
# (the cross-source table) and the held-out people's images (zero-shot baselines,
# λ initialisation). Training and validation images are left out: 3x fewer forwards.
PREDICTED_SPLITS = ("test", "personal")


def predict_with_experts(
    theta0: TensorBundle, image_cache: TensorBundle, generic_splits: pl.DataFrame, params: dict[str, Any], *expert_weights: TensorBundle
) -> pl.DataFrame:
    """Bin probabilities of every expert on every test or held-out person's image, deterministic view."""
    p = _params(params)
    crop, norm = theta0.meta["input_size"], normalisation(theta0)
    wanted = set(generic_splits.filter(pl.col("split").is_in(PREDICTED_SPLITS))["image_id"].to_list())
    rows = [i for i, iid in enumerate(image_cache.meta["image_ids"]) if iid in wanted]
    ids = [image_cache.meta["image_ids"][i] for i in rows]
    pixels = Rows(pixels_of(image_cache), torch.as_tensor(rows, dtype=torch.long))
    frames = []
    for bundle in expert_weights:
        scorer = load_scorer(theta0, bundle.tensors).to(p.torch_device)
        probs = predict(scorer, pixels, crop, norm, precision=p.precision, loader_workers=p.loader_workers)
        frames.append(predictions_table(bundle.meta["source"], ids, probs))
    return pl.concat(frames)


def evaluate_experts(
    expert_predictions: pl.DataFrame, generic_scores: pl.DataFrame, generic_splits: pl.DataFrame
) -> tuple[pl.DataFrame, plt.Figure]:
    """The source × source table (every expert on every test split) and its SROCC heatmap."""
    table = cross_source_metrics(expert_predictions, generic_scores, generic_splits)
    table = pl.concat([table, _constant_baseline(generic_scores, generic_splits)], how="diagonal_relaxed")
    return table, _heatmap(table.filter(pl.col("expert") != "constant"), "srocc")


def _constant_baseline(generic_scores: pl.DataFrame, generic_splits: pl.DataFrame) -> pl.DataFrame:
    """A constant predictor (the train mean) per source: the floor every expert must clear."""
    tab = generic_splits.join(generic_scores.select("image_id", "mean"), on="image_id")
    rows = []
    for source in sorted(tab["source"].unique().to_list()):
        t = tab.filter(pl.col("source") == source)
        mu = t.filter(pl.col("split") == "train")["mean"].mean()
        y = t.filter(pl.col("split") == "test")["mean"].to_numpy()
        if len(y) and mu is not None:
            err = y - mu
            rows.append(
                {"expert": "constant", "source": source, "n": float(len(y)), "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}
            )
    return pl.DataFrame(rows)


def _heatmap(table: pl.DataFrame, metric: str) -> plt.Figure:
    experts_ = table["expert"].unique(maintain_order=True).to_list()
    sources = sorted(table["source"].unique().to_list())
    m = np.full((len(experts_), len(sources)), np.nan)
    for r in table.iter_rows(named=True):
        m[experts_.index(r["expert"]), sources.index(r["source"])] = r[metric]
    fig, ax = plt.subplots(figsize=(1.1 * len(sources) + 2, 0.8 * len(experts_) + 1.5))
    im = ax.imshow(m, cmap="viridis", vmin=np.nanmin(m) if np.isfinite(m).any() else 0, vmax=1)
    ax.set_xticks(range(len(sources)), sources, rotation=30, ha="right")
    ax.set_yticks(range(len(experts_)), experts_)
    for i in range(len(experts_)):
        for j in range(len(sources)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel("test split of source")
    ax.set_ylabel("expert trained on")
    ax.set_title(f"{metric.upper()} of every expert on every source")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig
