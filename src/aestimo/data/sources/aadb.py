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
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from aestimo.data.scales import SCALES
from aestimo.data.sources import register
from aestimo.data.sources.check import Checker
from aestimo.data.sources.read import image_folder, read_table, require_file
from aestimo.data.sources.schema import SourceTables
from aestimo.data.sources.tables import abs_path, aggregate_only, make_image_id

KIND = "aadb"
SPLITS = {"Train": "train", "Validation": "val", "Test": "test"}
ATTRS = ["BalacingElements", "ColorHarmony", "Content", "DoF", "Light", "MotionBlur", "Object", "Repetition",
         "RuleOfThirds", "Symmetry", "VividColor"]
IMAGE_DIRS = ["datasetImages_originalSize", "datasetImages_warp256", "images"]


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

    parts = []
    for split, split_name in SPLITS.items():
        file = label_file(root, split, "score")
        named, df = _read(file, checker, "score", SCALES[KIND].lo, SCALES[KIND].hi)
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
    return aggregate_only(KIND, df, checker, splits=df.select("image_id", "split"))


def _read(file: Path, checker: Checker, col: str, lo: float, hi: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The image names the file lists (before any drop), and its checked rows."""
    df = read_table(file, checker, separator=None, names=["imageName", col], header=False)
    named = df.select("imageName")
    df = checker.number(df, col, file)
    df = checker.in_range(df, col, lo, hi, file)
    return named, checker.unique(df, ["imageName"], file, "imageName", "imageName")
