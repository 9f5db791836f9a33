"""REAL-CUR (Ren et al., ICCV 2017): real users rating their own photo albums on 1–5.

Files under ``root``: ``test_list.csv`` with rows ``worker,image_name,score``
and images ``images/<worker>/<int score>/<image_name>``.

Assumptions: the header line is optional; the first line is a header when one
of its cells, wherever it stands, is ``worker``, ``image_name`` or ``score``
(columns are then taken by name, in any order, and all three are required;
without a header the order is ``worker,image_name,score``). Scores are whole
numbers 1–5 (the image folder is named by the score). ``image_id`` is ``real_cur:{worker}/{image_name}``
(each album is one user's). Generic scores are the single rating per image
(std null for one vote); there is no official split and no user profile.

Whole-file problems (raise with ``on_bad_rows="drop"`` too) are the shared
ones (see :mod:`aestimo.data.sources.read` and
:mod:`~aestimo.data.sources.check`): a missing or renamed column in a header,
non-UTF-8 text, more than half of the lines without 3 comma-separated cells,
more than half of the rows unreadable, no usable row.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.read import read_table
from aestimo.data.sources.schema import SourceTables
from aestimo.data.sources.tables import abs_path, generic_from_ratings, images_table, make_image_id, ratings_table

KIND = "real_cur"
COLUMNS = ["worker", "image_name", "score"]


@register(KIND)
def read_real_cur(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    file = root / "test_list.csv"
    df = read_table(file, checker, separator=",", names=COLUMNS, header="auto", header_keys=COLUMNS,
                    required=COLUMNS)
    for c in ("worker", "image_name"):
        df = checker.required(df, c, file)
    df = checker.scale(df, "score", SCALES[KIND], file)
    df = checker.unique(df, ["worker", "image_name"], file, "image_name", "worker/image pair")
    score_dir = pl.col("score").round().cast(pl.Int64).cast(pl.String)
    df = df.with_columns(
        make_image_id(KIND, pl.col("worker") + "/" + pl.col("image_name")),
        abs_path(root, pl.concat_str([pl.lit("images"), pl.col("worker"), score_dir, pl.col("image_name")],
                                     separator="/")),
    )
    if require_images:
        df = checker.images_exist(df, "path", file, "image_name")
    return SourceTables(
        images=images_table(KIND, df),
        ratings=ratings_table(KIND, df, rater="worker"),
        generic_scores=generic_from_ratings(KIND, df),
        dropped=checker.dropped,
    )
