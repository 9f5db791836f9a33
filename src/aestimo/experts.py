"""Experts: θ0, labels per source, cached features, predictions and the source × source table.

Plain functions over tensors and polars tables (no Kedro), so a notebook can
rebuild or inspect any expert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from aestimo import metrics
from aestimo.datasets.safetensors_dataset import TensorBundle
from aestimo.imagecache import center_view, to_float
from aestimo.models.backbone import backbone_preprocessing
from aestimo.models.scorer import Scorer, build_scorer, template_tensor
from aestimo.scales import SCALES
from aestimo.taskvec import MergedScorer
from aestimo.training import Labels

log = logging.getLogger(__name__)


def make_theta0(
    backbone: str, weights: str | None, head_seed: int, allow_random: bool, input_size: int, cache_size: int
) -> TensorBundle:
    """θ0: the pretrained backbone plus one head initialised from ``head_seed``, shared by every expert."""
    scorer = build_scorer(backbone, weights, head_seed=head_seed, allow_random=allow_random)
    mean, std = backbone_preprocessing(backbone)
    meta = {
        "backbone": backbone,
        "weights": str(weights),
        "head_seed": head_seed,
        "input_size": input_size,
        "cache_size": cache_size,
        "mean": list(mean),
        "std": list(std),
    }
    return TensorBundle({k: v.clone() for k, v in scorer.state_dict().items()}, meta)


def scorer_from_state(theta0: TensorBundle, state: dict[str, torch.Tensor] | None = None) -> Scorer:
    """A scorer with θ0's architecture holding ``state`` (θ0 itself when None). Strict load."""
    scorer = build_scorer(theta0.meta["backbone"], None, head_seed=0, allow_random=True)
    scorer.load_state_dict(state if state is not None else theta0.tensors, strict=True)
    return scorer.eval()


def merged_scorer(theta0: TensorBundle, task_vectors: TensorBundle) -> MergedScorer:
    """θ0's scorer with the task vectors attached: ``theta_0 + sum_i lambda[i, l] tau[i, l]`` for any λ."""
    return MergedScorer(scorer_from_state(theta0), theta0.tensors, task_vectors)


def norm_of(theta0: TensorBundle) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(theta0.meta["mean"]), tuple(theta0.meta["std"])


@torch.no_grad()
def embed(scorer: Scorer, pixels: torch.Tensor, crop: int, norm, batch: int = 128) -> torch.Tensor:
    """Backbone features of the deterministic (centre-crop) view of each cached image."""
    scorer.eval()
    out = []
    for i in range(0, len(pixels), batch):
        out.append(scorer.features(to_float(center_view(pixels[i : i + batch], crop), *norm)))
    return torch.cat(out) if out else torch.empty(0, scorer.embed_dim)


@torch.no_grad()
def predict(scorer: Scorer, pixels: torch.Tensor, crop: int, norm, batch: int = 128) -> torch.Tensor:
    """Bin probabilities ``(N, 10)`` on the deterministic view."""
    scorer.eval()
    out = [scorer(to_float(center_view(pixels[i : i + batch], crop), *norm)) for i in range(0, len(pixels), batch)]
    return torch.cat(out) if out else torch.empty(0, 10)


@dataclass
class SplitData:
    """Rows of one split of one source: positions in the image cache and their labels."""

    rows: torch.Tensor
    labels: Labels


def source_splits(
    source: str, generic_scores: pl.DataFrame, generic_splits: pl.DataFrame, cache_ids: list[str]
) -> dict[str, SplitData]:
    """train / val / test rows of ``source`` with targets on its template scale."""
    pos = pl.DataFrame({"image_id": cache_ids, "row": np.arange(len(cache_ids))})
    tab = (
        generic_splits.filter((pl.col("source") == source) & pl.col("split").is_in(["train", "val", "test"]))
        .join(generic_scores.select("image_id", "mean_template", "dist"), on="image_id", how="inner")
        .join(pos, on="image_id", how="inner")
        .sort("image_id")
    )
    out = {}
    for split in ("train", "val", "test"):
        t = tab.filter(pl.col("split") == split)
        dist = dist_matrix(t["dist"])
        out[split] = SplitData(
            torch.as_tensor(t["row"].to_numpy().copy(), dtype=torch.long),
            Labels(torch.as_tensor(t["mean_template"].to_numpy(), dtype=torch.float32), torch.as_tensor(dist, dtype=torch.float32)),
        )
    if len(out["train"].rows) == 0 or len(out["val"].rows) == 0:
        raise ValueError(
            f"source '{source}' has {len(out['train'].rows)} train and {len(out['val'].rows)} val images: "
            "an expert needs both (check generic_splits and the source's rating files)"
        )
    return out


def dist_matrix(dist: pl.Series) -> np.ndarray:
    """A list column of 10-bin histograms as an ``(N, 10)`` array, NaN rows where null."""
    out = np.full((len(dist), 10), np.nan)
    has = dist.is_not_null().to_numpy()
    if has.any():
        out[has] = np.stack(dist.filter(dist.is_not_null()).to_list())
    return out


def predictions_table(expert: str, image_ids: list[str], probs: torch.Tensor) -> pl.DataFrame:
    return pl.DataFrame(
        {"expert": expert, "image_id": image_ids, "probs": probs.numpy().astype(np.float64).tolist()},
        schema={"expert": pl.String, "image_id": pl.String, "probs": pl.List(pl.Float64)},
    )


def score_on(source: str, probs: np.ndarray) -> np.ndarray:
    """Expected score of bin probabilities on ``source``'s own scale (via its template)."""
    sc = SCALES[source]
    return np.asarray(sc.from_template(probs @ template_tensor(sc.template).numpy().astype(np.float64)))


def cross_source_metrics(
    predictions: pl.DataFrame, generic_scores: pl.DataFrame, generic_splits: pl.DataFrame
) -> pl.DataFrame:
    """Every expert on every source's test split: PLCC, SROCC, accuracy at the scale
    midpoint, EMD where histograms exist, MAE on the low 20 % / middle 60 % / high 20 %."""
    test = generic_splits.filter(pl.col("split") == "test").join(
        generic_scores.select("image_id", "source", "mean", "dist"), on=["image_id", "source"]
    )
    rows = []
    for expert in predictions["expert"].unique(maintain_order=True).to_list():
        pe = predictions.filter(pl.col("expert") == expert)
        for source in sorted(test["source"].unique().to_list()):
            t = test.filter(pl.col("source") == source).join(pe.select("image_id", "probs"), on="image_id").sort("image_id")
            if t.height < 3:
                continue
            probs = np.stack(t["probs"].to_list())
            y = t["mean"].to_numpy()
            p = score_on(source, probs)
            rep = metrics.regression_report(
                y, p, threshold=SCALES[source].midpoint, dist_true=dist_matrix(t["dist"]), dist_pred=probs
            )
            rows.append({"expert": expert, "source": source, **{k: float(v) for k, v in rep.items()}})
    return pl.DataFrame(rows)
