"""PARA (Yang et al., CVPR 2022): personal ratings with attributes and rater profiles.

Files under ``root/annotation``: ``PARA-Images.csv`` (required; one row per
(user, image) rating), optionally ``PARA-UserInfo.csv`` (rater profiles) and
``PARA-GiaaTrain.csv`` / ``PARA-GiaaTest.csv`` (per-image aggregates, the
official split). Images ``imgs/{sessionId}/{imageName}``; ``image_id`` is
``para:{sessionId}/{imageName}``.

PARA-Images.csv: required columns sessionId, imageName, userId, aestheticScore
(1–5 in steps of 0.5) and the attribute scores qualityScore, compositionScore,
colorScore, dofScore, contentScore, lightScore; contentPreference,
willingnessToShare and difficultyOfJudgment are read when present. Attribute
cells may be empty (null), else must be numbers 1–5 (no step checked), except
difficultyOfJudgment, whose coding is decided per file: the release codes it
-1 / 0 / 1 (easy / normal / hard), other files (the synthetic world) 1–5. When
the file has more cells ≤ 0 than cells ≥ 2, it uses the release's coding and
every cell must be -1, 0 or 1; otherwise every cell must lie in 1–5. The values
are kept as coded: ``attr_difficulty`` is the mean on the file's own coding
(higher is harder in both). Per-image means are ``attr_quality``,
``attr_composition``, ``attr_color``, ``attr_dof``, ``attr_content``,
``attr_light``, ``attr_content_preference``, ``attr_willingness_to_share``,
``attr_difficulty``. ``semantic`` is the theme. Columns the adapter does not
use are not judged: ``isObjectEmphasis`` (0/1 in the release), ``imgEmotion``
(one of eight emotion names, e.g. ``Amusement``, ``Contentment``) and any
others may hold anything.

Giaa files (preferred over the ratings for the images they list): the
histogram is every column ``aestheticScore_<value>`` (1.0 … 5.0, 9 bins;
counts or fractions, normalised either way; ``n_votes`` is their sum when
they are whole numbers, else the number of ratings); ``aestheticScore_mean``
/ ``_std`` when present (else the histogram's mean). Attribute means are read
from ``{name}Score_mean`` or ``{name}_mean`` (*check*: exact names beyond
quality); other columns are ignored. Giaa rows for images that no rating
names are ignored; images in both files are bad rows.

PARA-UserInfo.csv: userId, age, gender, EducationalLevel, artExperience,
photographyExperience, personality-E/A/N/O/C, all required. Experience is
compared case-insensitively (stored lower-case) with beginner / competent /
proficient / expert (an empty cell is a bad row); Big-Five must be whole
numbers 1–9.

Whole-file problems (raise with ``on_bad_rows="drop"`` too): besides the
shared ones (missing or repeated column, non-UTF-8 text, header only, most
lines with the wrong number of cells, more than half of the rows unreadable,
no usable row; see :mod:`aestimo.data.sources.read` and
:mod:`~aestimo.data.sources.check`), a Giaa file with neither histogram
columns nor ``aestheticScore_mean``, or none of whose rows names a rated
image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.messages import message, plain, shown
from aestimo.data.sources.read import read_table, require_columns
from aestimo.data.sources.schema import (
    BIG5,
    EXPERIENCE_LEVELS,
    OFFICIAL_SPLITS_SCHEMA,
    USER_PROFILES_SCHEMA,
    SourceTables,
    empty,
)
from aestimo.data.sources.tables import (
    abs_path,
    dist_column,
    generic_from_ratings,
    images_table,
    make_image_id,
    profiles_table,
    ratings_table,
    splits_table,
)

KIND = "para"
IMAGES_FILE = "annotation/PARA-Images.csv"
USERS_FILE = "annotation/PARA-UserInfo.csv"
GIAA_FILES = {"train": "annotation/PARA-GiaaTrain.csv", "test": "annotation/PARA-GiaaTest.csv"}
REQUIRED_ATTRS = ["qualityScore", "compositionScore", "colorScore", "dofScore", "contentScore", "lightScore"]
OPTIONAL_ATTRS = ["contentPreference", "willingnessToShare", "difficultyOfJudgment"]
DIFFICULTY = "difficultyOfJudgment"
RELEASE_DIFFICULTY = (-1, 0, 1)  # easy, normal, hard: the release's coding
GIAA_ATTRS = ["quality", "composition", "color", "dof", "light", "content", "contentPreference",
              "willingnessToShare"]
_HIST = re.compile(r"^aestheticScore_(\d+(?:\.\d+)?)$")


def attr_name(col: str) -> str:
    """``qualityScore`` -> ``attr_quality``, ``willingnessToShare`` -> ``attr_willingness_to_share``."""
    name = {"difficultyOfJudgment": "difficulty"}.get(col, col)
    name = re.sub(r"Score$", "", name)
    return "attr_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@register(KIND)
def read_para(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    file = root / IMAGES_FILE
    df = read_table(file, checker, separator=",",
                    required=["sessionId", "imageName", "userId", "aestheticScore", *REQUIRED_ATTRS])
    named = df.select(make_image_id(KIND, pl.col("sessionId") + "/" + pl.col("imageName")))  # before any drop
    for c in ("sessionId", "imageName", "userId"):
        df = checker.required(df, c, file)
    df = checker.scale(df, "aestheticScore", SCALES[KIND], file)
    attrs = REQUIRED_ATTRS + [c for c in OPTIONAL_ATTRS if c in df.columns]
    for c in attrs:
        df = checker.number(df, c, file, required=False)
        if c == DIFFICULTY and _release_difficulty(df):
            df = checker.one_of(df, c, RELEASE_DIFFICULTY, file)
        else:
            df = checker.in_range(df, c, 1, 5, file)
    df = df.with_columns(make_image_id(KIND, pl.col("sessionId") + "/" + pl.col("imageName")),
                         abs_path(root, pl.lit("imgs/") + pl.col("sessionId") + "/" + pl.col("imageName")),
                         (pl.col("semantic") if "semantic" in df.columns else pl.lit(None, pl.String)).alias("theme"))
    df = checker.unique(df, ["userId", "image_id"], file, "imageName", "user/image pair")
    if require_images:
        df = checker.images_exist(df, "path", file, "imageName")
    df = df.rename({"aestheticScore": "score"} | {c: attr_name(c) for c in attrs})

    giaa, splits = _giaa(root, checker, named)
    images = df
    if giaa is not None:
        themes = giaa.select("image_id", pl.col("theme").alias("_giaa_theme"))
        images = df.join(themes, on="image_id", how="left", maintain_order="left").with_columns(
            pl.coalesce("theme", "_giaa_theme").alias("theme"))
        giaa = giaa.drop("theme")
    images = images_table(KIND, images)
    return SourceTables(
        images=images,
        ratings=ratings_table(KIND, df, rater="userId"),
        generic_scores=generic_from_ratings(KIND, df, attrs=[attr_name(c) for c in attrs], extra=giaa),
        user_profiles=_profiles(root / USERS_FILE, checker),
        official_splits=splits_table(KIND, splits, images) if splits is not None else empty(OFFICIAL_SPLITS_SCHEMA),
        dropped=checker.dropped,
    )


def _release_difficulty(df: pl.DataFrame) -> bool:
    """Whether the file codes difficultyOfJudgment as the release does (-1 / 0 / 1) rather than 1–5."""
    x = pl.col(DIFFICULTY)
    low, high = df.select((x <= 0).sum().alias("low"), (x >= 2).sum().alias("high")).row(0)
    return low > high


def _giaa(root: Path, checker: Checker,
          rated: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    parts = []
    for split, rel in GIAA_FILES.items():
        file = root / rel
        if not file.is_file():
            continue
        df = read_table(file, checker, separator=",", required=["imageName", "sessionId"])
        hist = sorted(((float(m.group(1)), c) for c in df.columns if (m := _HIST.match(c))), key=lambda t: t[0])
        if not hist and "aestheticScore_mean" not in df.columns:
            require_columns(df, file, ["aestheticScore_mean"], checker.header_row(file))
        listed = df.select(make_image_id(KIND, pl.col("sessionId") + "/" + pl.col("imageName")))
        checker.require_overlap(listed, "image_id", rated, "image_id", file, "a rated image", "imageName")
        for _, c in hist:
            df = checker.number(df, c, file)
            df = checker.flag(df, pl.col(c) < 0, file, c, message(f"{c} ", plain(pl.col(c)), " is negative"))
        if hist:
            df = checker.flag(df, pl.sum_horizontal(c for _, c in hist) <= 0, file, hist[0][1],
                              "the vote histogram is all 0")
        if "aestheticScore_mean" in df.columns:
            df = checker.number(df, "aestheticScore_mean", file)
            df = checker.in_range(df, "aestheticScore_mean", 1, 5, file)
        if "aestheticScore_std" in df.columns:
            df = checker.number(df, "aestheticScore_std", file, required=False)
            df = checker.flag(df, pl.col("aestheticScore_std") < 0, file, "aestheticScore_std",
                              message("aestheticScore_std ", plain(pl.col("aestheticScore_std")), " is negative"))
        attr_cols = {}
        for a in GIAA_ATTRS:
            col = next((c for c in (f"{a}Score_mean", f"{a}_mean") if c in df.columns), None)
            if col:
                df = checker.number(df, col, file, required=False)
                df = checker.in_range(df, col, 1, 5, file)
                attr_cols[col] = attr_name(a)
        df = df.with_columns(make_image_id(KIND, pl.col("sessionId") + "/" + pl.col("imageName")))
        df = checker.unique(df, ["image_id"], file, "imageName", "image")

        out = [pl.col("image_id"), (pl.col("semantic") if "semantic" in df.columns
                                     else pl.lit(None, pl.String)).alias("theme")]
        if hist:
            counts = df.select(c for _, c in hist).to_numpy().astype(np.float64)
            values = np.array([v for v, _ in hist])
            total = counts.sum(axis=1)
            whole = np.all(counts == np.round(counts), axis=1)
            hist_mean = (counts @ values) / np.maximum(total, 1e-12)
            out += [dist_column(counts, values, KIND),
                    pl.Series("n_votes", np.where(whole, total, np.nan)).fill_nan(None).cast(pl.Int64)]
            mean = pl.col("aestheticScore_mean") if "aestheticScore_mean" in df.columns else pl.Series(hist_mean)
        else:
            mean = pl.col("aestheticScore_mean")
        out.append(mean.alias("mean"))
        if "aestheticScore_std" in df.columns:
            out.append(pl.col("aestheticScore_std").alias("std"))
        out += [pl.col(c).alias(a) for c, a in attr_cols.items()]
        parts.append(df.select(*out, pl.lit(split).alias("split"), pl.lit(str(file)).alias("_file"),
                               pl.col("_row")))
    if not parts:
        return None, None
    giaa = pl.concat(parts, how="diagonal_relaxed")
    test = root / GIAA_FILES["test"]
    if len(parts) == 2:
        both = (pl.len().over("image_id") > 1) & (pl.col("_file") == str(test))
        train_row = pl.col("_row").filter(pl.col("_file") != str(test)).first().over("image_id")
        giaa = checker.flag(giaa, both, test, "imageName",
                            message("image ", shown(pl.col("image_id")), " is also in PARA-GiaaTrain.csv, row ",
                                    plain(train_row)))
        if checker.drop:  # drop the train copy too
            giaa = giaa.filter(pl.len().over("image_id") == 1)
    splits = giaa.select("image_id", "split")
    return giaa.drop("split", "_file", "_row"), splits


def _profiles(file: Path, checker: Checker) -> pl.DataFrame:
    if not file.is_file():
        return empty(USER_PROFILES_SCHEMA)
    big5 = [f"personality-{t}" for t in BIG5]
    df = read_table(file, checker, separator=",", required=["userId", "age", "gender", "EducationalLevel",
                                                             "artExperience", "photographyExperience", *big5])
    df = checker.required(df, "userId", file)
    for c in ("artExperience", "photographyExperience"):
        df = df.with_columns(pl.col(c).str.to_lowercase())
        df = checker.flag(df, ~pl.col(c).is_in(list(EXPERIENCE_LEVELS)).fill_null(False), file, c,
                          message(f"{c} ", shown(pl.col(c)), f" is not one of {', '.join(EXPERIENCE_LEVELS)}"))
    for c in big5:
        df = checker.number(df, c, file)
        df = checker.in_range(df, c, 1, 9, file)
        df = checker.on_step(df, c, 1, 1, file)
    df = checker.unique(df, ["userId"], file, "userId", "userId")
    return profiles_table(KIND, df.select(
        pl.col("userId").alias("rater_id"), "age", "gender", pl.col("EducationalLevel").alias("education"),
        pl.col("artExperience").alias("art_experience"), pl.col("photographyExperience").alias("photo_experience"),
        *[pl.col(f"personality-{t}").cast(pl.Int64).alias(f"big5_{t}") for t in BIG5],
    ))
