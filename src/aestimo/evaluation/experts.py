"""Experts evaluated: every expert's predictions as a table, and the source × source metrics.

Plain functions over polars tables (no Kedro), so a notebook can re-evaluate any expert.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from aestimo.data.scales import SCALES, dist_matrix
from aestimo.evaluation import metrics
from aestimo.models.scorer import template_tensor


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
