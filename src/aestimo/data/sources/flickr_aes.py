"""FLICKR-AES (Ren et al., ICCV 2017): 1–5 ratings of ~40k Flickr photos by 210 AMT workers.

Files under ``root``: ``FLICKR-AES_image_labeled_by_each_worker.csv`` (header
``worker, imagePair, score``, names and cells may carry spaces, which are
stripped), images ``40K/{imagePair}``, and optionally
``FLICKR-AES_image_score.txt`` (``<filename> <mean score>`` per line, lines
may start with a space).

Generic scores come from the workers' ratings (std, n_votes, dist = histogram
of the ratings); the mean is taken from the score file for the images it
lists (it must be numeric and within 1–5; it is not required to be on the
step). Score-file lines for images nobody rated are ignored. The data set has
no official split (the field's 37 test workers are a people split, not in
these files), so ``official_splits`` is empty.

Whole-file problems (raise with ``on_bad_rows="drop"`` too): besides the
shared ones (missing column, non-UTF-8 text, most lines with the wrong number
of cells, more than half of the rows unreadable, no usable row; see
:mod:`aestimo.data.sources.read` and :mod:`~aestimo.data.sources.check`), a
score file none of whose lines names a rated image (it would otherwise be
silently replaced by the ratings' means).
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

KIND = "flickr_aes"
RATINGS_FILE = "FLICKR-AES_image_labeled_by_each_worker.csv"
SCORE_FILE = "FLICKR-AES_image_score.txt"


@register(KIND)
def read_flickr_aes(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    file = root / RATINGS_FILE
    df = read_table(file, checker, separator=",", required=["worker", "imagePair", "score"])
    named = df.select("imagePair")  # before any drop: the score file is judged against every rated name
    for c in ("worker", "imagePair"):
        df = checker.required(df, c, file)
    df = checker.scale(df, "score", SCALES[KIND], file)
    df = checker.unique(df, ["worker", "imagePair"], file, "imagePair", "worker/image pair")
    df = df.with_columns(make_image_id(KIND, pl.col("imagePair")),
                         abs_path(root, pl.lit("40K/") + pl.col("imagePair")))
    if require_images:
        df = checker.images_exist(df, "path", file, "imagePair")

    extra = _published_means(root / SCORE_FILE, checker, named)
    return SourceTables(
        images=images_table(KIND, df),
        ratings=ratings_table(KIND, df, rater="worker"),
        generic_scores=generic_from_ratings(KIND, df, extra=extra),
        dropped=checker.dropped,
    )


def _published_means(file: Path, checker: Checker, rated: pl.DataFrame) -> pl.DataFrame | None:
    if not file.is_file():
        return None
    df = read_table(file, checker, separator=None, names=["filename", "mean"], header=False)
    checker.require_overlap(df, "filename", rated, "imagePair", file, "a rated image", "filename")
    df = checker.number(df, "mean", file)
    scale = SCALES[KIND]
    df = checker.in_range(df, "mean", scale.lo, scale.hi, file)
    df = checker.unique(df, ["filename"], file, "filename", "filename")
    return df.select(make_image_id(KIND, pl.col("filename")), pl.col("mean"))
