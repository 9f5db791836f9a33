"""TAD66K (He et al., IJCAI 2022): theme-aware aesthetic means on 0–10 for ~66k images.

Files under ``root``: ``labels/merge/train.csv`` and ``labels/merge/test.csv``
(header ``image,score``; both required), images flat in ``TAD66K/``.

Only per-image means are published: ``ratings`` holds one row per image with
a null rater, ``std``, ``n_votes`` and ``dist`` are null. The theme of each
image is not in these files, so ``theme`` is null. An image listed twice
(within or across the two files) is a bad row. Official split: the file it
is listed in.

Whole-file problems (raise with ``on_bad_rows="drop"`` too) are the shared
ones, per file (see :mod:`aestimo.data.sources.read` and
:mod:`~aestimo.data.sources.check`): missing file or column, non-UTF-8 text,
header only, most lines with the wrong number of cells, more than half of the
rows unreadable, no usable row.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.read import read_table, require_file
from aestimo.data.sources.schema import SourceTables
from aestimo.data.sources.tables import abs_path, aggregate_only, make_image_id

KIND = "tad66k"


@register(KIND)
def read_tad66k(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    files = {split: root / "labels" / "merge" / f"{split}.csv" for split in ("train", "test")}
    for f in files.values():
        require_file(f)
    parts = []
    for split, file in files.items():
        df = read_table(file, checker, separator=",", required=["image", "score"])
        df = checker.required(df, "image", file)
        df = checker.scale(df, "score", SCALES[KIND], file)
        parts.append(df.select(pl.lit(str(file)).alias("_file"), "_row", "image", "score",
                               pl.lit(split).alias("split")))
    df = pl.concat(parts)
    # a repeated image: reported in the file that repeats it (drop mode: every copy, in every file)
    df = checker.unique_across(df, "image", list(files.values()), "image", "image")
    df = df.with_columns(make_image_id(KIND, pl.col("image")), abs_path(root, pl.lit("TAD66K/") + pl.col("image")),
                         pl.col("score").alias("mean"))
    if require_images:
        for file in files.values():
            mine = df.filter(pl.col("_file") == str(file))
            kept = checker.images_exist(mine, "path", file, "image")
            df = pl.concat([df.filter(pl.col("_file") != str(file)), kept])
        order = {str(f): i for i, f in enumerate(files.values())}
        df = df.sort(pl.col("_file").replace_strict(order, return_dtype=pl.Int64), "_row")
    return aggregate_only(KIND, df, checker, splits=df.select("image_id", "split"))
