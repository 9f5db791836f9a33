"""KonIQ-10k (Hosu et al., TIP 2020): technical quality of 10k images, vote histograms on 1–5.

Files under ``root``: ``koniq10k_scores_and_distributions.csv`` (header
``image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore``; ``image_name``,
``c1..c5`` and ``MOS`` are required, the others optional), images in
``512x384/``, and optionally ``koniq10k_distributions_sets.csv`` (any columns
including ``image_name`` and ``set`` in {training, validation, test}).

Assumptions (public descriptions disagree): c1..c5 may be vote counts or fractions;
each is accepted per row, as the distribution is normalised either way.
``c_total``, when present, is the number of votes and is checked against
c1..c5: a row is consistent when c1..c5 sum to ``c_total`` (counts) or to 1
within 0.01 (fractions of the ``c_total`` votes); any other row is a bad row
(column ``c_total``). A one-vote row (sum 1) passes either reading.
``n_votes`` is ``c_total`` when present, else the sum of c1..c5 when these
are whole numbers (counts), else null. ``MOS`` (1–5) is the score, ``SD`` the
std; ``MOS_zscore`` (0–100) becomes ``attr_mos_zscore``. Set-file rows for
images the scores file lacks are ignored.

Whole-file problems (raise with ``on_bad_rows="drop"`` too): besides the
shared ones (missing or repeated column, non-UTF-8 text, header only, most
lines with the wrong number of cells, more than half of the rows unreadable,
no usable row; see :mod:`aestimo.data.sources.read` and
:mod:`~aestimo.data.sources.check`), a sets file none of whose rows names an
image of the scores file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.messages import message, plain, shown
from aestimo.data.sources.read import read_table
from aestimo.data.sources.schema import SourceTables
from aestimo.data.sources.tables import abs_path, aggregate_only, dist_column, make_image_id

KIND = "koniq10k"
SCORES_FILE = "koniq10k_scores_and_distributions.csv"
SETS_FILE = "koniq10k_distributions_sets.csv"
BINS = [f"c{k}" for k in range(1, 6)]
SET_NAMES = {"training": "train", "validation": "val", "test": "test"}
FRACTION_TOLERANCE = 0.01  # c1..c5 given as fractions must sum to 1 within this


@register(KIND)
def read_koniq10k(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    file = root / SCORES_FILE
    df = read_table(file, checker, separator=",", required=["image_name", *BINS, "MOS"])
    named = df.select("image_name")  # before any drop: the sets file is judged against every listed name
    df = checker.required(df, "image_name", file)
    scale = SCALES[KIND]
    df = checker.scale(df, "MOS", scale, file)
    for c in BINS:
        df = checker.number(df, c, file)
        df = checker.flag(df, pl.col(c) < 0, file, c, message(f"{c} ", plain(pl.col(c)), " is negative"))
    total = pl.sum_horizontal(BINS)
    df = checker.flag(df, total <= 0, file, "c1", "the vote distribution c1..c5 is all 0")
    if "c_total" in df.columns:
        df = checker.count(df, "c_total", file)
        counts_match = (total - pl.col("c_total")).abs() <= 1e-6
        fractions = (total - 1).abs() <= FRACTION_TOLERANCE
        df = checker.flag(df, ~(counts_match | fractions), file, "c_total",
                          message("c1..c5 sum to ", plain(total.round(6)), ", neither c_total (",
                                  plain(pl.col("c_total").cast(pl.Int64)), ") nor 1 (fractions)"))
    if "SD" in df.columns:
        df = checker.number(df, "SD", file, required=False)
        df = checker.flag(df, pl.col("SD") < 0, file, "SD", message("SD ", plain(pl.col("SD")), " is negative"))
    if "MOS_zscore" in df.columns:
        df = checker.number(df, "MOS_zscore", file, required=False)
        df = checker.in_range(df, "MOS_zscore", 0, 100, file)
    df = checker.unique(df, ["image_name"], file, "image_name", "image_name")
    df = df.with_columns(make_image_id(KIND, pl.col("image_name")),
                         abs_path(root, pl.lit("512x384/") + pl.col("image_name")))
    if require_images:
        df = checker.images_exist(df, "path", file, "image_name")

    counts = df.select(BINS).to_numpy().astype(np.float64)
    whole = np.all(counts == np.round(counts), axis=1)
    if "c_total" in df.columns:
        n_votes = pl.col("c_total")
    else:
        n_votes = pl.when(pl.Series(whole)).then(pl.sum_horizontal(BINS)).otherwise(None)
    df = df.with_columns(
        pl.col("MOS").alias("mean"),
        (pl.col("SD") if "SD" in df.columns else pl.lit(None, dtype=pl.Float64)).alias("std"),
        n_votes.cast(pl.Int64).alias("n_votes"),
        dist_column(counts, np.arange(1, 6), KIND),
        *([pl.col("MOS_zscore").alias("attr_mos_zscore")] if "MOS_zscore" in df.columns else []),
    )
    return aggregate_only(KIND, df, checker, splits=_splits(root / SETS_FILE, named, checker))


def _splits(file: Path, named: pl.DataFrame, checker: Checker) -> pl.DataFrame | None:
    if not file.is_file():
        return None
    df = read_table(file, checker, separator=",", required=["image_name", "set"])
    checker.require_overlap(df, "image_name", named, "image_name", file, "an image of the scores file",
                            "image_name")
    df = checker.flag(df, ~pl.col("set").is_in(list(SET_NAMES)).fill_null(False), file, "set",
                      message("set ", shown(pl.col("set")), " is not one of training, validation, test"))
    df = checker.unique(df, ["image_name"], file, "image_name", "image_name")
    return df.select(make_image_id(KIND, pl.col("image_name")),
                     pl.col("set").replace_strict(SET_NAMES, return_dtype=pl.String).alias("split"))
