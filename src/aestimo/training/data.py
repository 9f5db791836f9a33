"""What an expert learns from: the train / val / test rows of one source, with targets on its template scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from aestimo.data.scales import dist_matrix


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

    def to(self, device: torch.device) -> Labels:
        return Labels(self.score.to(device), self.dist.to(device))


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
            Labels(torch.from_numpy(t["mean_template"].to_numpy().astype(np.float32)), torch.as_tensor(dist, dtype=torch.float32)),
        )
    if len(out["train"].rows) == 0 or len(out["val"].rows) == 0:
        raise ValueError(
            f"source '{source}' has {len(out['train'].rows)} train and {len(out['val'].rows)} val images: "
            "an expert needs both (check generic_splits and the source's rating files)"
        )
    return out


def unlabeled_pool(
    source: str, generic_splits: pl.DataFrame, cache_ids: list[str], size: int | None, seed: int
) -> tuple[torch.Tensor, list[str]]:
    """An expert's unlabelled pool: training images of the **other** sources (their labels are never
    read), none that is in any validation, test or held-out person's split, at most ``size`` (default:
    the expert's own training-set size), drawn from ``seed``. Returns cache rows and image ids."""
    own_train = generic_splits.filter((pl.col("source") == source) & (pl.col("split") == "train")).height
    size = own_train if size is None else min(size, own_train)
    barred = set(generic_splits.filter(pl.col("split") != "train")["image_id"].to_list())
    barred |= set(generic_splits.filter(pl.col("source") == source)["image_id"].to_list())
    pos = {iid: i for i, iid in enumerate(cache_ids)}
    ids = sorted(
        i for i in generic_splits.filter((pl.col("source") != source) & (pl.col("split") == "train"))["image_id"].unique().to_list()
        if i not in barred and i in pos
    )
    pick = sorted(np.random.default_rng(seed).permutation(len(ids))[:size].tolist())
    chosen = [ids[i] for i in pick]
    return torch.as_tensor([pos[i] for i in chosen], dtype=torch.long), chosen
