"""Building the canonical tables of :mod:`aestimo.data.sources.schema` from checked frames.

Every adapter ends here: image ids and absolute paths, then the images,
ratings, generic scores, official splits and user profiles tables, so that
all formats come out with the same columns and dtypes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from aestimo.data.scales import SCALES, histogram_to_template
from aestimo.data.sources.check import Checker
from aestimo.data.sources.schema import (
    GENERIC_SCORES_SCHEMA,
    IMAGES_SCHEMA,
    OFFICIAL_SPLITS_SCHEMA,
    RATINGS_SCHEMA,
    USER_PROFILES_SCHEMA,
    SourceTables,
    empty,
)


def make_image_id(kind: str, local: pl.Expr) -> pl.Expr:
    return (pl.lit(f"{kind}:") + local).alias("image_id")


def abs_path(root: Path, rel: pl.Expr) -> pl.Expr:
    """``str(root / rel)`` as an expression."""
    return (pl.lit(str(root) + os.sep) + rel).alias("path")


def images_table(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    """One row per image_id (first occurrence) from a frame with image_id, path and optionally theme."""
    cols = [pl.col("image_id"), pl.col("path")]
    cols.append(pl.col("theme") if "theme" in df.columns else pl.lit(None, dtype=pl.String).alias("theme"))
    out = df.select(cols).unique("image_id", keep="first", maintain_order=True)
    return out.select(pl.col("image_id"), pl.lit(kind).alias("source"), pl.col("path"),
                      pl.col("theme").cast(pl.String)).cast(IMAGES_SCHEMA)


def ratings_table(kind: str, df: pl.DataFrame, score: str = "score", rater: str | None = None) -> pl.DataFrame:
    """Canonical ratings from a frame with image_id, a rater column (or none) and a Float64 score column."""
    scale = SCALES[kind]
    return df.select(
        pl.lit(kind).alias("source"), pl.col("image_id"),
        (pl.col(rater) if rater else pl.lit(None)).cast(pl.String).alias("rater_id"),
        pl.col(score).cast(pl.Float64).alias("score"),
        scale.to_template(pl.col(score).cast(pl.Float64)).alias("score_template"),
    ).cast(RATINGS_SCHEMA)


def dist_column(counts: np.ndarray, bin_values: Sequence[float], kind: str) -> pl.Series:
    """10-bin template distributions (one list per row; null where a row has no votes)."""
    d = histogram_to_template(np.asarray(bin_values, dtype=np.float64), counts, SCALES[kind])
    s = pl.Series("dist", d, dtype=pl.Array(pl.Float64, d.shape[1])).cast(pl.List(pl.Float64))
    ok = pl.Series(~np.isnan(d).any(axis=1))
    return pl.select(pl.when(ok).then(s).otherwise(None).alias("dist")).to_series()


def generic_table(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    """Canonical generic scores from image_id, mean and optional std, n_votes, dist, attr_* columns."""
    scale = SCALES[kind]

    def col(name, dtype):
        return pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype=dtype).alias(name)

    base = [
        pl.lit(kind).alias("source"), pl.col("image_id"), pl.col("mean").cast(pl.Float64),
        col("std", pl.Float64), col("n_votes", pl.Int64),
        scale.to_template(pl.col("mean").cast(pl.Float64)).alias("mean_template"),
        col("dist", pl.List(pl.Float64)),
    ]
    attrs = sorted(c for c in df.columns if c.startswith("attr_"))
    out = df.select(*base, *[pl.col(a).cast(pl.Float64) for a in attrs])
    return out.cast(GENERIC_SCORES_SCHEMA | {a: pl.Float64 for a in attrs})


def generic_from_ratings(kind: str, ratings: pl.DataFrame, attrs: Sequence[str] = (),
                         extra: pl.DataFrame | None = None) -> pl.DataFrame:
    """mean / std / n_votes / dist of per-rater ratings (``image_id``, Float64 ``score``, attr columns).

    ``dist`` is the histogram of the ratings on the 10 template bins (each
    rating to the nearest bin). Attribute columns are averaged over non-null
    values. Images keep the order of their first rating.
    """
    scale = SCALES[kind]
    tvals = scale.template_values
    t = np.asarray(scale.to_template(ratings["score"].to_numpy().astype(np.float64)))
    bins = np.abs(t[:, None] - tvals[None, :]).argmin(axis=1) if len(t) else np.zeros(0, dtype=np.int64)
    r = ratings.with_columns(pl.Series("_bin", bins, dtype=pl.Int64))
    agg = r.group_by("image_id", maintain_order=True).agg(
        pl.col("score").mean().alias("mean"),
        pl.col("score").std(ddof=1).alias("std"),
        pl.len().cast(pl.Int64).alias("n_votes"),
        *[pl.col(a).mean().alias(f"attr_{a}" if not a.startswith("attr_") else a) for a in attrs],
        pl.col("_bin").alias("_bins"),
    )
    counts = np.zeros((agg.height, len(tvals)))
    if agg.height:
        lens = agg["_bins"].list.len().to_numpy()
        rows = np.repeat(np.arange(agg.height), lens)
        np.add.at(counts, (rows, agg["_bins"].explode().to_numpy().astype(np.int64)), 1.0)
    agg = agg.drop("_bins").with_columns(
        pl.Series("dist", counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), dtype=pl.Array(pl.Float64, 10))
        .cast(pl.List(pl.Float64))
    )
    if extra is not None:  # preferred aggregates (e.g. a published mean) override per column
        agg = agg.join(extra, on="image_id", how="left", suffix="_pref", maintain_order="left")
        for c in extra.columns:
            if c != "image_id" and f"{c}_pref" in agg.columns:
                agg = agg.with_columns(pl.coalesce(pl.col(f"{c}_pref"), pl.col(c)).alias(c)).drop(f"{c}_pref")
    return generic_table(kind, agg)


def splits_table(kind: str, df: pl.DataFrame, images: pl.DataFrame) -> pl.DataFrame:
    """Canonical official splits (image_id, split), kept only for images the adapter returns."""
    keep = images.select("image_id")
    out = df.select("image_id", "split").unique("image_id", keep="first", maintain_order=True)
    out = out.join(keep, on="image_id", how="semi", maintain_order="left")
    return out.select(pl.lit(kind).alias("source"), "image_id", "split").cast(OFFICIAL_SPLITS_SCHEMA)


def profiles_table(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    """Canonical user profiles from whatever of the schema's columns ``df`` has (others null)."""
    cols = []
    for name, dtype in USER_PROFILES_SCHEMA.items():
        if name == "source":
            cols.append(pl.lit(kind).alias("source"))
        elif name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(cols).cast(USER_PROFILES_SCHEMA)


def aggregate_only(
    kind: str,
    df: pl.DataFrame,
    checker: Checker,
    *,
    user_profiles: pl.DataFrame | None = None,
    splits: pl.DataFrame | None = None,
) -> SourceTables:
    """Tables of a source with one score per image: ``df`` holds image_id, path, theme?, mean, std?,
    n_votes?, dist?, attr_*; ratings get one row per image with a null rater."""
    images = images_table(kind, df)
    ratings = ratings_table(kind, df, score="mean")
    generic = generic_table(kind, df)
    return SourceTables(
        images=images,
        ratings=ratings,
        generic_scores=generic,
        user_profiles=user_profiles if user_profiles is not None else empty(USER_PROFILES_SCHEMA),
        official_splits=splits_table(kind, splits, images) if splits is not None else empty(OFFICIAL_SPLITS_SCHEMA),
        dropped=checker.dropped,
    )
