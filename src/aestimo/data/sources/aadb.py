"""AADB (Kong et al., ECCV 2016): overall aesthetic score in [0, 1] and 11 attributes in [-1, 1].

Files under ``root``: ``imgListFiles_label/imgList{Train,Validation,Test}Regression_{Attr}.txt``,
one ``<imageName> <value>`` per line (whitespace separated, no header), Attr
in {score, BalacingElements (sic), ColorHarmony, Content, DoF, Light,
MotionBlur, Object, Repetition, RuleOfThirds, Symmetry, VividColor}; all 36
files are required.

Assumptions (the label files do not name the image folder): images are
``datasetImages_originalSize/<imageName>``, else ``datasetImages_warp256/``,
else ``images/`` (the first that exists; with ``require_images`` one must).
Attribute files are joined on the image name per split; an image missing from
an attribute file gets a null attribute, and attribute lines for images the
split's score file lacks are ignored. An image in two splits is a bad row.
Only means are published: one rating row per image with a null rater; std,
n_votes and dist are null. Official split: Train/Validation/Test = train/val/test.

Whole-file problems (raise with ``on_bad_rows="drop"`` too): besides the
shared ones, per file (missing file, non-UTF-8 text, most lines without two
whitespace-separated cells, more than half of the rows unreadable, no usable
row; see :mod:`aestimo.data.sources.read` and
:mod:`~aestimo.data.sources.check`), an attribute file none of whose lines
names an image of its split's score file (it would otherwise silently empty
that attribute).

Per-rater ratings (optional): ``AllinAll.csv`` (else ``AADB_AllinAll.csv``) in ``root``, the
Amazon Mechanical Turk batch results the authors collected AADB with, as public AADB loaders read
it: a comma-separated file with a header, every cell in double quotes (cells may hold commas),
one row per HIT assignment: ``WorkerId``, ``Input.image_url1`` … ``Input.image_url10`` (the ten
photos of the HIT) and ``Answer.overallScore1`` … ``Answer.overallScore10`` (that worker's 1–5
rating of each), plus HIT metadata and per-attribute answers (``Answer.ColorHarmony<i>``, …,
``Answer.VisualBalance<i>`` = Positive / Negative / Neutral) that are not read. With it,
``ratings`` holds one row per worker and image, ``rater_id`` = ``WorkerId``, so AADB raters can be
held out as people; without it the source stays aggregate-only as above.

Assumptions of the per-rater file (the release documents none of them): the image name is
``<farm>_<server>_<file>`` of the URL ``http://farm<N>.staticflickr.com/<server>/<file>``
(``farm<N>`` the host's first label), which is how the label files name images; a cell without
``://`` is taken as the image name itself. A slot count comes from the ``Input.image_url<i>``
columns, and each needs its ``Answer.overallScore<i>``; ``WorkerId`` is required. A score is a
whole number 1–5; an empty score or 0 means the worker did not rate that photo (the slot is
skipped, as the authors' own scripts discard zero scores). A rating ``r`` is stored on the
source's 0–1 scale as ``(r - 1) / 4`` (the release does not say how its label score was
normalised; the synthetic world writes the label score as the mean of ``(r - 1) / 4``). A worker
rates an image once. Ratings of images no label file lists are ignored; a labelled image no
worker rated keeps its one aggregate row with a null rater. ``generic_scores`` keeps the label
files' mean and attributes and takes ``std``, ``n_votes`` and ``dist`` from the per-rater
ratings. Bad cells are named by the file, the line and the slot's column (e.g.
``Answer.overallScore3``); a per-rater file none of whose photos is in the label files raises
(it belongs to another data set).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.messages import DOCS, message, names as listed, plain, shown
from aestimo.data.sources.read import ROW, image_folder, read_table, read_text, require_columns, require_file
from aestimo.data.sources.schema import USER_PROFILES_SCHEMA, RawDataError, SourceTables, empty
from aestimo.data.sources.tables import (
    abs_path,
    aggregate_only,
    generic_from_ratings,
    generic_table,
    images_table,
    make_image_id,
    ratings_table,
    splits_table,
)

KIND = "aadb"
SPLITS = {"Train": "train", "Validation": "val", "Test": "test"}
ATTRS = ["BalacingElements", "ColorHarmony", "Content", "DoF", "Light", "MotionBlur", "Object", "Repetition",
         "RuleOfThirds", "Symmetry", "VividColor"]
IMAGE_DIRS = ["datasetImages_originalSize", "datasetImages_warp256", "images"]
PER_RATER_FILES = ["AllinAll.csv", "AADB_AllinAll.csv"]
WORKER = "WorkerId"
URL = "Input.image_url"
SCORE = "Answer.overallScore"


def attr_name(attr: str) -> str:
    """``BalacingElements`` -> ``attr_balancing_elements``, ``DoF`` -> ``attr_dof``."""
    name = {"BalacingElements": "BalancingElements", "DoF": "Dof"}.get(attr, attr)
    return "attr_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def label_file(root: Path, split: str, attr: str) -> Path:
    return root / "imgListFiles_label" / f"imgList{split}Regression_{attr}.txt"


@register(KIND)
def read_aadb(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    for split in SPLITS:
        for attr in ["score", *ATTRS]:
            require_file(label_file(root, split, attr))
    image_dir = image_folder(root, IMAGE_DIRS, require_images, fallback=IMAGE_DIRS[0])

    parts, listed_names = [], []
    for split, split_name in SPLITS.items():
        file = label_file(root, split, "score")
        named, df = _read(file, checker, "score", SCALES[KIND].lo, SCALES[KIND].hi)
        listed_names.append(named)
        for attr in ATTRS:
            attr_file = label_file(root, split, attr)
            _, a = _read(attr_file, checker, attr, -1.0, 1.0)
            checker.require_overlap(a, "imageName", named, "imageName", attr_file,
                                    f"an image of {file.name}", "imageName")
            df = df.join(a.select("imageName", pl.col(attr).alias(attr_name(attr))), on="imageName", how="left",
                         maintain_order="left")
        parts.append(df.with_columns(pl.lit(str(file)).alias("_file"), pl.lit(split_name).alias("split")))
    df = pl.concat(parts)
    df = checker.unique_across(df, "imageName", [label_file(root, s, "score") for s in SPLITS], "imageName",
                               "image")
    df = df.with_columns(make_image_id(KIND, pl.col("imageName")),
                         abs_path(root, pl.lit(image_dir + "/") + pl.col("imageName")),
                         pl.col("score").alias("mean"))
    if require_images:
        kept = [checker.images_exist(df.filter(pl.col("split") == s), "path", label_file(root, k, "score"),
                                     "imageName") for k, s in SPLITS.items()]
        df = pl.concat(kept)
    splits = df.select("image_id", "split")
    per_rater = next((root / f for f in PER_RATER_FILES if (root / f).is_file()), None)
    if per_rater is None:
        return aggregate_only(KIND, df, checker, splits=splits)
    rated = read_per_rater(per_rater, checker, pl.concat(listed_names))
    rated = rated.join(df.select("imageName", "image_id"), on="imageName", how="inner", maintain_order="left")
    return _with_raters(df, rated, checker, splits)


def _with_raters(df: pl.DataFrame, rated: pl.DataFrame, checker: Checker, splits: pl.DataFrame) -> SourceTables:
    """Tables from the label rows ``df`` and the per-rater ratings ``rated`` (image_id, WorkerId, score)."""
    images = images_table(KIND, df)
    unrated = df.join(rated.select("image_id").unique(), on="image_id", how="anti", maintain_order="left")
    ratings = pl.concat([ratings_table(KIND, rated, rater=WORKER), ratings_table(KIND, unrated, score="mean")])
    stats = generic_from_ratings(KIND, rated.select("image_id", "score")).select("image_id", "std", "n_votes", "dist")
    generic = generic_table(KIND, df.join(stats, on="image_id", how="left", maintain_order="left"))
    return SourceTables(
        images=images,
        ratings=ratings,
        generic_scores=generic,
        user_profiles=empty(USER_PROFILES_SCHEMA),
        official_splits=splits_table(KIND, splits, images),
        dropped=checker.dropped,
    )


def _read(file: Path, checker: Checker, col: str, lo: float, hi: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The image names the file lists (before any drop), and its checked rows."""
    df = read_table(file, checker, separator=None, names=["imageName", col], header=False)
    named = df.select("imageName")
    df = checker.number(df, col, file)
    df = checker.in_range(df, col, lo, hi, file)
    return named, checker.unique(df, ["imageName"], file, "imageName", "imageName")


# -- the per-rater file (AMT batch results)


def read_per_rater(file: Path, checker: Checker, labelled: pl.DataFrame | None = None) -> pl.DataFrame:
    """The per-rater file as one row per rated photo: ``_row`` (the assignment's line), ``_slot``,
    ``WorkerId``, ``imageName`` and ``score`` on the 0–1 scale (see the module docstring).

    ``labelled`` (column ``imageName``): the label files' images; a file naming none of them raises.
    """
    header_row, header, data = _quoted_csv(file)
    slots = sorted(int(m.group(1)) for c in header if (m := re.fullmatch(re.escape(URL) + r"(\d+)", c)))
    required = [WORKER, *[f"{p}{i}" for i in slots or [1] for p in (URL, SCORE)]]
    require_columns(pl.DataFrame(schema={c: pl.String for c in header}), file, required, header_row)
    checker.note_file(file, header_row, len(data))
    n = len(header)
    wrong = [row for row, cells in data if len(cells) != n]
    if len(wrong) * 2 > len(data):
        got = next(len(cells) for row, cells in data if row == wrong[0])
        raise RawDataError(
            file, wrong[0], None,
            f"{len(wrong)} of {len(data)} data lines do not have {n} cells separated by ',' (line {wrong[0]} has "
            f"{got}); the file is not laid out as expected (another delimiter, another file's layout, or not "
            f"this data set's text): replace it with the data set's original file (layout in {DOCS})",
        )
    index = {c: i for i, c in enumerate(header)}
    wanted = [WORKER, *[f"{p}{i}" for i in slots for p in (URL, SCORE)]]
    cols: dict[str, list] = {ROW: [r for r, _ in data], "_cells": [len(c) for _, c in data]}
    for c in wanted:
        k = index[c]
        cols[c] = [cells[k].strip() if k < len(cells) else None for _, cells in data]
    df = pl.DataFrame(cols, schema={ROW: pl.Int64, "_cells": pl.Int64} | {c: pl.String for c in wanted})
    df = checker.flag(df, pl.col("_cells") != n, file, None,
                      message("line has ", pl.col("_cells").cast(pl.String), f" cells, expected {n} ({listed(header)})"),
                      malformed=True)
    df = checker.required(df, WORKER, file)

    long = pl.concat([
        df.select(ROW, pl.lit(i, dtype=pl.Int64).alias("_slot"), WORKER, pl.col(f"{URL}{i}").alias("url"),
                  pl.col(f"{SCORE}{i}").alias("score"))
        for i in slots
    ])
    number = pl.col("score").cast(pl.Float64, strict=False)
    unrated = pl.col("score").is_null() | (pl.col("score") == "") | (number == 0)
    long = long.filter(~unrated.fill_null(False))  # an empty or 0 score: the worker did not rate the photo
    long = _flag_slots(checker, long, pl.col("url").is_null() | (pl.col("url") == ""), file, URL,
                       "the photo's URL is empty", malformed=True)
    long = _flag_slots(checker, long, number.is_null() | ~number.is_finite(), file, SCORE,
                       message("overallScore ", shown(pl.col("score")), " is not a number"), malformed=True)
    long = long.with_columns(number.alias("score"))
    x = pl.col("score")
    long = _flag_slots(checker, long, (x < 1) | (x > 5) | (x != x.round()), file, SCORE,
                       message("overallScore ", plain(x), " is not a whole number from 1 to 5"))

    parts = pl.col("url").str.split("/")
    is_url = pl.col("url").str.contains("://", literal=True)
    bad_url = is_url & ((parts.list.len() < 5) | (parts.list.last() == "") | (parts.list.get(-2, null_on_oob=True) == ""))
    long = _flag_slots(checker, long, bad_url, file, URL,
                       message("image URL ", shown(pl.col("url")), " is not a Flickr photo URL "
                               "(http://farm<N>.staticflickr.com/<server>/<file>)"))
    farm = parts.list.get(2, null_on_oob=True).str.split(".").list.first()
    name = pl.concat_str([farm, parts.list.get(-2, null_on_oob=True), parts.list.last()], separator="_")
    long = long.with_columns(pl.when(is_url).then(name).otherwise(pl.col("url")).alias("imageName"))
    if labelled is not None:
        checker.require_overlap(long, "imageName", labelled, "imageName", file, "a photo of the label files")

    key = [WORKER, "imageName"]
    order = pl.col(ROW) * 1000 + pl.col("_slot")
    first_row = pl.col(ROW).sort_by(order).first().over(key)
    second_row = pl.col(ROW).sort_by(order).slice(1, 1).first().over(key)
    dup = pl.len().over(key) > 1
    first = order == order.min().over(key)
    if not checker.drop:
        dup = dup & ~first
    reason = (pl.when(first)
              .then(message("worker/photo pair ", shown(pl.col("imageName")), " repeats at row ", plain(second_row)))
              .otherwise(message("worker/photo pair ", shown(pl.col("imageName")), " repeats (first at row ",
                                 plain(first_row), ")")))
    long = _flag_slots(checker, long, dup, file, URL, reason)
    scale = SCALES[KIND]
    return long.select(ROW, "_slot", WORKER, "imageName",
                       (scale.lo + (pl.col("score") - 1) / 4 * (scale.hi - scale.lo)).alias("score"))


def _flag_slots(checker: Checker, df: pl.DataFrame, bad: pl.Expr, file: Path, prefix: str,
                reason: str | pl.Expr, *, malformed: bool = False) -> pl.DataFrame:
    """:meth:`Checker.flag` on a frame with one row per answer slot: the column a bad row is named
    by is ``prefix<slot>``. ``bad`` and ``reason`` are computed on the whole frame first (window
    expressions see every slot); in error mode the earliest bad (row, slot) raises."""
    why = pl.lit(reason, dtype=pl.String) if isinstance(reason, str) else reason.cast(pl.String)
    df = df.with_columns(bad.fill_null(False).alias("_bad"), why.alias("_why"))
    hits = df.filter(pl.col("_bad")).sort(ROW, "_slot")
    if hits.height == 0:
        return df.drop("_bad", "_why")
    slots = hits["_slot"].unique(maintain_order=True).to_list()
    kept = [df.filter(~pl.col("_slot").is_in(slots))]
    for s in slots:  # the first slot holds the earliest bad row: error mode raises there
        kept.append(checker.flag(df.filter(pl.col("_slot") == s), pl.col("_bad"), file, f"{prefix}{s}",
                                 pl.col("_why"), malformed=malformed))
    return pl.concat(kept).sort(ROW, "_slot").drop("_bad", "_why")


def _quoted_csv(file: Path) -> tuple[int, list[str], list[tuple[int, list[str]]]]:
    """A comma-separated file whose cells may be quoted (and hold commas): the header's line, its
    names (stripped) and the data records with the line each starts on. Blank lines are skipped;
    the text checks (UTF-8, BOM, NUL) are :func:`~aestimo.data.sources.read.read_text`'s."""
    text = read_text(file)
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str]]] = []
    line = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if "".join(cells).strip():
                records.append((start, cells))
    except csv.Error as e:
        raise RawDataError(file, reader.line_num, None, f"the line cannot be read as CSV ({e}); replace the file "
                           "with the data set's original file") from None
    if not records:
        raise RawDataError(file, None, None, "file is empty; replace it with the data set's original file")
    header_row, names = records[0]
    header = [c.strip() for c in names]
    seen: set[str] = set()
    for c in header:
        if c in seen:
            raise RawDataError(file, header_row, c, "column name repeats in the header; rename one of them")
        seen.add(c)
    if len(records) == 1:
        raise RawDataError(file, None, None, "file has a header but no data rows; replace it with the data set's "
                           "original file")
    return header_row, header, records[1:]
