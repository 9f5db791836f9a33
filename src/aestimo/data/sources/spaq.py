"""SPAQ (Fang et al., CVPR 2020): smartphone photo quality, MOS and five attributes on 0–100.

Files under ``root``: ``Annotations/MOS and Image attribute scores.xlsx``
(first sheet, header on sheet row 1: ``Image name, MOS, Brightness,
Colorfulness, Contrast, Noisiness, Sharpness``), images ``TestImage/<Image
name>``, and optionally the scene labels ``Scene category labels.xlsx``.

Assumptions (*check*): the scene workbook is looked up in ``Annotations/``
first, then in ``root``. Its first sheet has ``Image name`` and either one
label column (its value is the theme, e.g. ``Landscape``) or several 0/1
columns, one per scene (the theme is the names of the columns set to 1,
joined by ``|``). Scene rows for unknown images are ignored; images without a
scene row get a null theme. Only the MOS is published: one rating row per
image with a null rater; std, n_votes and dist are null. The attributes are
``attr_brightness`` .. ``attr_sharpness`` (0–100). No official split.

Whole-file problems (raise with ``on_bad_rows="drop"`` too): a workbook that
cannot be read or has no data row, a header name that repeats, a missing
column, more than half of the rows unreadable (an empty or non-numeric
cell), no usable row; a scene workbook none of whose rows names an image of
the scores workbook.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.read import read_xlsx, require_columns
from aestimo.data.sources.schema import SourceTables
from aestimo.data.sources.tables import abs_path, aggregate_only, make_image_id

KIND = "spaq"
SCORES_FILE = "Annotations/MOS and Image attribute scores.xlsx"
SCENE_FILE = "Scene category labels.xlsx"
ATTRS = ["Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]


@register(KIND)
def read_spaq(root: Path, require_images: bool, checker: Checker) -> SourceTables:
    file = root / SCORES_FILE
    df = read_xlsx(file, checker, required=["Image name", "MOS", *ATTRS])
    named = df.select("Image name")  # before any drop: the scene workbook is judged against every name
    df = checker.required(df, "Image name", file)
    df = checker.scale(df, "MOS", SCALES[KIND], file)
    for a in ATTRS:
        df = checker.number(df, a, file)
        df = checker.in_range(df, a, 0, 100, file)
    df = checker.unique(df, ["Image name"], file, "Image name", "Image name")
    df = df.with_columns(
        make_image_id(KIND, pl.col("Image name")),
        abs_path(root, pl.lit("TestImage/") + pl.col("Image name")),
        pl.col("MOS").alias("mean"),
        *[pl.col(a).alias(f"attr_{a.lower()}") for a in ATTRS],
    )
    if require_images:
        df = checker.images_exist(df, "path", file, "Image name")
    scenes = _scenes(root, checker, named)
    if scenes is not None:
        df = df.join(scenes, on="Image name", how="left", maintain_order="left")
    return aggregate_only(KIND, df, checker)


def _scenes(root: Path, checker: Checker, images: pl.DataFrame) -> pl.DataFrame | None:
    for file in (root / "Annotations" / SCENE_FILE, root / SCENE_FILE):
        if file.is_file():
            break
    else:
        return None
    df = read_xlsx(file, checker, required=["Image name"])
    labels = [c for c in df.columns if c not in ("Image name", "_row")]
    if not labels:
        require_columns(df, file, ["Scene category"], checker.header_row(file))
    checker.require_overlap(df.filter(pl.col("Image name").is_not_null()), "Image name", images, "Image name",
                            file, "an image of the scores workbook", "Image name")
    if len(labels) == 1:
        theme = pl.col(labels[0])
    else:
        on = [pl.when(pl.col(c).cast(pl.Float64, strict=False) == 1).then(pl.lit(c)) for c in labels]
        theme = pl.concat_list(on).list.drop_nulls().list.join("|")
        theme = pl.when(theme == "").then(None).otherwise(theme)
    return (df.select(pl.col("Image name"), theme.cast(pl.String).alias("theme"))
            .unique("Image name", keep="first", maintain_order=True))
