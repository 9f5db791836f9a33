"""EVA (Kang et al., ICPR 2020): 0–10 votes of 4,070 images with attribute answers.

Files under ``root``: ``data/votes_filtered.csv``, cells separated by ``=``:
``image_id=user_id=score=difficulty=visual=composition=quality=semantic=vote_time=1=2=3=4``.
Optional user attributes ``data/users.csv`` (or ``users.csv``), also ``=``.

Assumptions (*check*): the votes file's header line is optional: the first
line is a header when one of its cells, wherever it stands, is ``image_id``,
``user_id`` or ``score`` (columns are then taken by name, in any order);
without one the columns are the list above, as many as the first line has
cells (at least 3). Required columns: image_id, user_id, score (0–10; any
real value, no step). The attribute answers
difficulty, visual, composition, quality, semantic are optional, may be
empty, else must be numbers 1–4; their per-image means are ``attr_<name>``.
Images are ``images/EVA_together/{image_id}.jpg``, else ``images/{image_id}.jpg``
(the first folder that exists; with ``require_images`` one must). users.csv:
the rater column is ``user_id``; ``age``, ``gender`` are taken by name, and
education / photo_experience / art_experience from the first column whose
name contains ``educ`` / ``photo`` / ``art``, kept verbatim; Big-Five is null.
No official split.

Whole-file problems (raise with ``on_bad_rows="drop"`` too) are the shared
ones, per file (see :mod:`aestimo.data.sources.read` and
:mod:`~aestimo.data.sources.check`): missing file or required column,
non-UTF-8 text, header only, more than half of the lines with another number
of ``=``-separated cells than the header (or the first line), more than half
of the rows unreadable, no usable row.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.read import image_folder, read_table
from aestimo.data.sources.schema import USER_PROFILES_SCHEMA, SourceTables, empty
from aestimo.data.sources.tables import (
    abs_path,
    generic_from_ratings,
    images_table,
    make_image_id,
    profiles_table,
    ratings_table,
)

KIND = "eva"
COLUMNS = ["image_id", "user_id", "score", "difficulty", "visual", "composition", "quality", "semantic",
           "vote_time", "1", "2", "3", "4"]
REQUIRED = ["image_id", "user_id", "score"]
ATTRS = ["difficulty", "visual", "composition", "quality", "semantic"]
IMAGE_DIRS = ["images/EVA_together", "images"]


@register(KIND)
def read_eva(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    file = root / "data" / "votes_filtered.csv"
    df = read_table(file, checker, separator="=", names=COLUMNS, header="auto", header_keys=REQUIRED,
                    required=REQUIRED, fit_names=len(REQUIRED))
    for c in ("image_id", "user_id"):
        df = checker.required(df, c, file)
    df = checker.scale(df, "score", SCALES[KIND], file)
    attrs = [a for a in ATTRS if a in df.columns]
    for a in attrs:
        df = checker.number(df, a, file, required=False)
        df = checker.in_range(df, a, 1, 4, file)
    df = checker.unique(df, ["user_id", "image_id"], file, "image_id", "user/image pair")
    image_dir = image_folder(root, IMAGE_DIRS, require_images, fallback="images")
    df = df.with_columns(make_image_id(KIND, pl.col("image_id")),
                         abs_path(root, pl.lit(image_dir + "/") + pl.col("image_id") + ".jpg"))
    if require_images:
        df = checker.images_exist(df, "path", file, "image_id")
    return SourceTables(
        images=images_table(KIND, df),
        ratings=ratings_table(KIND, df, rater="user_id"),
        generic_scores=generic_from_ratings(KIND, df, attrs=attrs),
        user_profiles=_profiles(root, checker),
        dropped=checker.dropped,
    )


def _profiles(root: Path, checker: Checker) -> pl.DataFrame:
    file = next((f for f in (root / "data" / "users.csv", root / "users.csv") if f.is_file()), None)
    if file is None:
        return empty(USER_PROFILES_SCHEMA)
    df = read_table(file, checker, separator="=", required=["user_id"])
    df = checker.required(df, "user_id", file)
    df = checker.unique(df, ["user_id"], file, "user_id", "user_id")

    def find(part: str) -> str | None:
        return next((c for c in df.columns if part in c.lower() and c != "user_id"), None)

    cols = {"rater_id": "user_id", "age": "age" if "age" in df.columns else None,
            "gender": "gender" if "gender" in df.columns else None, "education": find("educ"),
            "photo_experience": find("photo"), "art_experience": find("art")}
    return profiles_table(KIND, df.select(pl.col(src).alias(dst) for dst, src in cols.items() if src))
