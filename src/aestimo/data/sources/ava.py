"""AVA (Murray et al., CVPR 2012): vote histograms of ~255k DPChallenge photos.

Files under ``root``: ``AVA.txt`` (no header, whitespace separated, possibly
several spaces: ``index image_id c1..c10 semantic_tag1 semantic_tag2
challenge_id``), images ``images/{image_id}.jpg``, official test list
``aesthetics_image_lists/generic_test.jpgl`` (optional; listed ids = test,
all others = train).

Assumptions: c1..c10 are vote counts (whole numbers >= 0; an image with no
votes is a bad row). ``theme`` is semantic_tag1 as a string, or tag2 when tag1
is 0, null when both are 0 (the tag ids are kept, not their names). Ids in the
test list that AVA.txt lacks are ignored.

Whole-file problems (raise with ``on_bad_rows="drop"`` too): besides the
shared ones (see :mod:`aestimo.data.sources.read` and
:mod:`~aestimo.data.sources.check`: missing, empty or non-UTF-8 file, more
than half of the lines without 15 whitespace-separated cells, e.g. a
comma-separated AVA.txt, more than half of the rows unreadable, no usable
row), a test list that is empty, is not UTF-8, or names none of AVA.txt's
image ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.read import read_table, read_text
from aestimo.data.sources.schema import RawDataError, SourceTables
from aestimo.data.sources.tables import abs_path, aggregate_only, dist_column, make_image_id

KIND = "ava"
COUNTS = [f"c{k}" for k in range(1, 11)]
COLUMNS = ["index", "image_id", *COUNTS, "semantic_tag1", "semantic_tag2", "challenge_id"]


@register(KIND)
def read_ava(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    file = root / "AVA.txt"
    df = read_table(file, checker, separator=None, names=COLUMNS, header=False)
    named = df.select("image_id")  # before any drop: a side file is judged against every listed id
    df = checker.required(df, "image_id", file)
    for c in COUNTS:
        df = checker.count(df, c, file)
    for c in ("semantic_tag1", "semantic_tag2"):
        df = checker.number(df, c, file, required=False, out=f"_{c}")
    total = pl.sum_horizontal(COUNTS)
    df = checker.flag(df, total <= 0, file, "c1", "the image has no votes (c1..c10 all 0)")
    df = checker.unique(df, ["image_id"], file, "image_id", "image_id")
    df = df.with_columns(
        make_image_id(KIND, pl.col("image_id")),
        abs_path(root, pl.lit("images/") + pl.col("image_id") + pl.lit(".jpg")),
        _theme(),
    )
    if require_images:
        df = checker.images_exist(df, "path", file, "image_id")

    counts = df.select(COUNTS).to_numpy().astype(np.float64)
    k = np.arange(1, 11, dtype=np.float64)
    n = counts.sum(axis=1)
    mean = (counts @ k) / np.maximum(n, 1)
    var = (counts @ (k**2)) / np.maximum(n, 1) - mean**2
    std = np.sqrt(np.clip(var, 0, None) * n / np.maximum(n - 1, 1))  # sample std of the votes
    df = df.with_columns(
        pl.Series("mean", mean), pl.Series("std", std), pl.Series("n_votes", n.astype(np.int64)),
        dist_column(counts, k, KIND),
    )
    splits = _splits(root, df, named, checker)
    return aggregate_only(KIND, df, checker, splits=splits)


def _theme() -> pl.Expr:
    t1, t2 = pl.col("_semantic_tag1"), pl.col("_semantic_tag2")
    as_str = lambda t: t.cast(pl.Int64, strict=False).cast(pl.String)  # noqa: E731
    return (pl.when(t1.is_not_null() & (t1 != 0)).then(as_str(t1))
            .when(t2.is_not_null() & (t2 != 0)).then(as_str(t2)).otherwise(None).alias("theme"))


def _splits(root: Path, df: pl.DataFrame, named: pl.DataFrame, checker: Checker) -> pl.DataFrame | None:
    file = root / "aesthetics_image_lists" / "generic_test.jpgl"
    if not file.is_file():
        return None
    ids = pl.Series("id", read_text(file).split(), dtype=pl.String)
    if ids.len() == 0:
        raise RawDataError(file, None, None, "test list is empty; replace it with the data set's original file "
                           "or remove it")
    checker.require_overlap(ids.to_frame(), "id", named, "image_id", file, "an image id of AVA.txt")
    return df.select(
        "image_id",
        pl.when(pl.col("image_id").str.strip_prefix(f"{KIND}:").is_in(ids.unique().implode()))
        .then(pl.lit("test")).otherwise(pl.lit("train")).alias("split"),
    )

