"""The personalization summary: one row per method × k."""

from __future__ import annotations

import polars as pl


def summarize(metrics_table: pl.DataFrame) -> pl.DataFrame:
    """The summary per method × k: mean ± std, where std is over repeats of the
    person-averaged SROCC (as the papers report)."""
    per_repeat = metrics_table.group_by("method", "k", "repeat").agg(
        pl.col("srocc").mean().alias("srocc"), pl.col("plcc").mean().alias("plcc"), pl.len().alias("people")
    )
    summary = (
        per_repeat.group_by("method", "k")
        .agg(
            pl.col("srocc").mean().alias("srocc_mean"),
            pl.col("srocc").std(ddof=0).alias("srocc_std"),
            pl.col("plcc").mean().alias("plcc_mean"),
            pl.col("plcc").std(ddof=0).alias("plcc_std"),
            pl.col("repeat").n_unique().alias("repeats"),
            pl.col("people").max().alias("people"),
        )
        .sort("k", "srocc_mean", descending=[False, True])
    )
    return summary
