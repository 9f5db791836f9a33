"""Reading and checking raw rating files, shared by every adapter.

Every reader returns an all-string polars frame with a ``_row`` column: the
1-based line number an editor shows (header included), or the sheet row for
xlsx. Checks are vectorised: each finds the offending rows with one polars
expression and hands them to :meth:`Checker.flag`, which raises a
:class:`RawDataError` on the first one (``on_bad_rows="error"``) or drops them
all and records them (``on_bad_rows="drop"``).

Structural problems (missing file or column, empty file) always raise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from aestimo.scales import SCALES, Scale, histogram_to_template
from aestimo.sources.schema import (
    DROPPED_SCHEMA,
    GENERIC_SCORES_SCHEMA,
    IMAGES_SCHEMA,
    OFFICIAL_SPLITS_SCHEMA,
    RATINGS_SCHEMA,
    USER_PROFILES_SCHEMA,
    RawDataError,
    SourceTables,
    empty,
)

ROW = "_row"
ON_BAD_ROWS = ("error", "drop")
_FIX = "fix or remove the row, or read the source with on_bad_rows='drop'"


# --------------------------------------------------------------------------- files


def require_file(path: Path, what: str = "") -> Path:
    """Raise a :class:`RawDataError` unless ``path`` is an existing file."""
    if not path.is_file():
        hint = f" ({what})" if what else ""
        raise RawDataError(
            path, None, None,
            f"file not found{hint}; put the data set's file at this path (layout in FORMATS.md) "
            "or point the source's root at the folder that holds it",
        )
    return path


def _lines(path: Path) -> pl.DataFrame:
    """Non-blank lines of a text file with their 1-based line numbers (BOM and CR removed)."""
    require_file(path)
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    lines = pl.Series("line", text.split("\n"), dtype=pl.String).str.strip_suffix("\r")
    df = lines.to_frame().with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    df = df.filter(pl.col("line").str.strip_chars() != "")
    if df.height == 0:
        raise RawDataError(path, None, None, "file is empty; replace it with the data set's original file")
    return df


def _split(df: pl.DataFrame, separator: str | None) -> pl.DataFrame:
    """Add a list column ``_fields``: whitespace-separated tokens, or cells between ``separator``."""
    if separator is None:
        fields = pl.col("line").str.extract_all(r"\S+")
    else:
        fields = pl.col("line").str.split(separator)
    return df.with_columns(fields.alias("_fields"))


def _cell(i: int) -> pl.Expr:
    """Cell ``i`` of ``_fields``, stripped of spaces and of one pair of surrounding double quotes."""
    return (
        pl.col("_fields").list.get(i, null_on_oob=True).str.strip_chars()
        .str.strip_prefix('"').str.strip_suffix('"').str.strip_chars()
    )


def read_table(
    path: Path,
    checker: Checker,
    separator: str | None = ",",
    names: Sequence[str] | None = None,
    header: bool | str = True,
) -> pl.DataFrame:
    """Read a delimited text file into an all-string frame with a ``_row`` column.

    ``separator=None`` splits on runs of whitespace (leading spaces ignored).
    ``header``: True (first non-blank line is the header), False (no header;
    ``names`` gives the columns), or ``"auto"`` (a header when its first cell
    equals ``names[0]``). Column names and cells are stripped of surrounding
    spaces and double quotes (no quoted separators inside cells: none of the
    formats has them). A data line with a different number of cells than the
    header is a bad row (column None).
    """
    df = _split(_lines(path), separator)
    first = df.row(0, named=True)["_fields"]
    header_row = df.row(0, named=True)[ROW]
    first_clean = [c.strip().strip('"').strip() for c in first]
    if header == "auto":
        header = bool(names) and bool(first_clean) and first_clean[0] == names[0]
    if header:
        cols = first_clean
        df = df.slice(1)
        if df.height == 0:
            raise RawDataError(path, None, None, "file has a header but no data rows; replace it with the "
                               "data set's original file")
        dup = {c for c in cols if cols.count(c) > 1}
        if dup:
            raise RawDataError(path, header_row, sorted(dup)[0], "column name repeats in the header; "
                               "rename one of them")
    else:
        cols = list(names or [])
    n = len(cols)
    df = checker.flag(
        df, pl.col("_fields").list.len() != n, path, None,
        pl.format(f"line has {{}} cells, expected {n} ({', '.join(cols)})", pl.col("_fields").list.len()),
    )
    return df.select(pl.col(ROW), *[_cell(i).alias(c) for i, c in enumerate(cols)])


def read_xlsx(path: Path) -> pl.DataFrame:
    """Read the first sheet of an xlsx workbook as strings, ``_row`` = the sheet row (as Excel shows it).

    The header is the first non-empty row; empty rows inside the table keep
    their numbers and are skipped.
    """
    import fastexcel

    require_file(path)
    try:
        sheet = fastexcel.read_excel(str(path)).load_sheet(0, header_row=None, dtypes="string")
        raw = sheet.to_polars()
    except Exception as e:  # noqa: BLE001 - any reader failure is a broken file
        raise RawDataError(path, None, None, f"cannot read the workbook ({e}); replace it with the original") from e
    if raw.height < 2:
        raise RawDataError(path, None, None, "sheet has no data rows; replace it with the data set's original file")
    header = [str(c).strip() if c is not None else f"__column{i}" for i, c in enumerate(raw.row(0))]
    first_row = _first_sheet_row(path)
    df = raw.slice(1).rename(dict(zip(raw.columns, header)))
    df = df.with_row_index(ROW, offset=first_row + 1).with_columns(pl.col(ROW).cast(pl.Int64))
    df = df.with_columns(pl.col(c).str.strip_chars() for c in header)
    df = df.filter(~pl.all_horizontal(pl.col(c).is_null() | (pl.col(c) == "") for c in header))
    if df.height == 0:
        raise RawDataError(path, None, None, "sheet has no data rows; replace it with the data set's original file")
    return df


def _first_sheet_row(path: Path) -> int:
    """The sheet row of the first non-empty row (calamine skips leading empty rows); 1 if unknown."""
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True)
        try:
            ws = wb.worksheets[0]
            for i, row in enumerate(ws.iter_rows(min_row=1, max_row=50, values_only=True), start=1):
                if any(v is not None and str(v).strip() for v in row):
                    return i
        finally:
            wb.close()
    except Exception:  # noqa: BLE001 - only a best effort for the row numbers in messages
        pass
    return 1


def require_columns(df: pl.DataFrame, path: Path, columns: Iterable[str], header_row: int | None = 1) -> None:
    """Raise when the header lacks one of ``columns``."""
    have = [c for c in df.columns if c != ROW]
    for c in columns:
        if c not in df.columns:
            raise RawDataError(path, header_row, c, f"column missing from the header (found: {', '.join(have)}); "
                               "use the data set's original file or rename the column")


# --------------------------------------------------------------------------- row checks


class Checker:
    """Row-level checks of one source: raise on the first bad row, or drop and record bad rows."""

    def __init__(self, source: str, on_bad_rows: str = "error"):
        if on_bad_rows not in ON_BAD_ROWS:
            raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
        self.source = source
        self.drop = on_bad_rows == "drop"
        self._dropped: list[pl.DataFrame] = []

    @property
    def dropped(self) -> pl.DataFrame:
        if not self._dropped:
            return empty(DROPPED_SCHEMA)
        return pl.concat(self._dropped).sort("file", "row", maintain_order=True)

    def flag(
        self,
        df: pl.DataFrame,
        bad: pl.Expr,
        file: Path,
        column: str | None,
        reason: str | pl.Expr,
        hint: str = _FIX,
    ) -> pl.DataFrame:
        """Rows of ``df`` where ``bad`` holds are bad: raise on the first, or drop and record them all."""
        mask = df.select(bad.fill_null(False).alias("_bad")).to_series()
        if not mask.any():
            return df
        reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
        bad_rows = df.filter(mask).select(pl.col(ROW).alias("row"), reason_expr.cast(pl.String).alias("reason"))
        if not self.drop:
            first = bad_rows.sort("row").row(0, named=True)
            raise RawDataError(file, first["row"], column, f"{first['reason']}; {hint}")
        self._dropped.append(
            bad_rows.select(
                pl.lit(self.source).alias("source"), pl.lit(str(file)).alias("file"),
                pl.col("row").cast(pl.Int64), pl.lit(column, dtype=pl.String).alias("column"), pl.col("reason"),
            )
        )
        return df.filter(~mask)

    # -- typed cells

    def number(self, df: pl.DataFrame, col: str, file: Path, *, required: bool = True,
               out: str | None = None) -> pl.DataFrame:
        """Cast ``col`` to Float64 into ``out`` (default: in place); an empty or non-numeric cell is a bad row.

        With ``required=False`` an empty cell stays null (only non-numeric text is bad).
        """
        out = out or col
        x = pl.col(col).cast(pl.Float64, strict=False)
        empty_cell = pl.col(col).is_null() | (pl.col(col) == "")
        not_num = ~empty_cell & (x.is_null() | ~x.is_finite())
        bad = (not_num | empty_cell) if required else not_num
        reason = pl.when(empty_cell).then(pl.lit(f"{col} is empty")).otherwise(
            pl.format(f"{col} '{{}}' is not a number", pl.col(col)))
        df = self.flag(df, bad, file, col, reason)
        return df.with_columns(x.alias(out))

    def in_range(self, df: pl.DataFrame, col: str, lo: float, hi: float, file: Path,
                 label: str | None = None) -> pl.DataFrame:
        """A value outside ``[lo, hi]`` is a bad row (nulls pass)."""
        x = pl.col(col)
        what = label or col
        return self.flag(df, (x < lo - 1e-9) | (x > hi + 1e-9), file, what,
                         pl.format(f"{what} {{}} is outside the scale [{lo:g}, {hi:g}]", x))

    def on_step(self, df: pl.DataFrame, col: str, lo: float, step: float, file: Path,
                label: str | None = None) -> pl.DataFrame:
        """A value off the grid ``lo + k * step`` is a bad row (nulls pass)."""
        k = (pl.col(col) - lo) / step
        what = label or col
        return self.flag(df, (k - k.round()).abs() > 1e-6, file, what,
                         pl.format(f"{what} {{}} is not a multiple of {step:g} from {lo:g}", pl.col(col)))

    def scale(self, df: pl.DataFrame, col: str, scale: Scale, file: Path, label: str | None = None,
              check_step: bool = True) -> pl.DataFrame:
        """Numeric, inside the scale, and on its step (when it has one and ``check_step``)."""
        df = self.number(df, col, file)
        df = self.in_range(df, col, scale.lo, scale.hi, file, label)
        if check_step and scale.step:
            df = self.on_step(df, col, scale.lo, scale.step, file, label)
        return df

    def count(self, df: pl.DataFrame, col: str, file: Path) -> pl.DataFrame:
        """A vote count: numeric, a whole number, not negative."""
        df = self.number(df, col, file)
        x = pl.col(col)
        return self.flag(df, (x < 0) | (x != x.round()), file, col,
                         pl.format(f"{col} {{}} is not a vote count (a whole number >= 0)", x))

    def unique(self, df: pl.DataFrame, keys: Sequence[str], file: Path, column: str, what: str) -> pl.DataFrame:
        """Repeated ``keys`` are bad rows: error at the first repeat; drop mode drops every copy."""
        first = pl.col(ROW).min().over(keys)
        dup = pl.len().over(keys) > 1
        if not self.drop:
            dup = dup & (pl.col(ROW) != first)
        return self.flag(df, dup, file, column, pl.format(f"{what} repeats (first at row {{}})", first))

    def images_exist(self, df: pl.DataFrame, path_col: str, file: Path, column: str) -> pl.DataFrame:
        """Rows whose image file (absolute path in ``path_col``) is missing are bad.

        Lists each image folder once (``os.scandir``) instead of one ``stat`` per row.
        """
        if df.height == 0:
            return df
        parts = df.select(
            pl.col(path_col).str.extract(r"^(.*)[/\\][^/\\]*$", 1).fill_null("").alias("_dir"),
            pl.col(path_col).str.extract(r"([^/\\]*)$", 1).alias("_name"),
        )
        listed = [pl.DataFrame({"_dir": [d], "_name": [_list_dir(d)]}, schema={"_dir": pl.String,
                                                                           "_name": pl.List(pl.String)})
                  for d in parts["_dir"].unique().to_list()]
        existing = pl.concat(listed).explode("_name").drop_nulls().with_columns(pl.lit(True).alias("_exists"))
        found = parts.join(existing, on=["_dir", "_name"], how="left", maintain_order="left")["_exists"]
        return self.flag(
            df.with_columns(found.is_null().alias("_missing")), pl.col("_missing"), file, column,
            pl.format("no image file {}", pl.col(path_col)),
            "add the image, read the source with require_images=False, or with on_bad_rows='drop'",
        ).drop("_missing")


def _list_dir(d: str) -> list[str]:
    try:
        with os.scandir(d or ".") as it:
            return [e.name for e in it if e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []


# --------------------------------------------------------------------------- tables


def make_image_id(kind: str, local: pl.Expr) -> pl.Expr:
    return (pl.lit(f"{kind}:") + local).alias("image_id")


def abs_path(root: Path, rel: pl.Expr) -> pl.Expr:
    """``str(root / rel)`` as an expression."""
    return (pl.lit(str(root) + os.sep) + rel).alias("path")


def images_table(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    """One row per image_id (first occurrence) from a frame with image_id, path and optionally theme."""
    cols = [pl.col("image_id"), pl.col("path")]
    cols.append(pl.col("theme") if "theme" in df.columns else pl.lit(None, dtype=pl.String).alias("theme"))
    out = df.select(cols).unique("image_id", keep="first", maintain_order=True)
    return out.select(pl.col("image_id"), pl.lit(kind).alias("source"), pl.col("path"),
                      pl.col("theme").cast(pl.String)).cast(IMAGES_SCHEMA)


def ratings_table(kind: str, df: pl.DataFrame, score: str = "score", rater: str | None = None) -> pl.DataFrame:
    """Canonical ratings from a frame with image_id, a rater column (or none) and a Float64 score column."""
    scale = SCALES[kind]
    return df.select(
        pl.lit(kind).alias("source"), pl.col("image_id"),
        (pl.col(rater) if rater else pl.lit(None)).cast(pl.String).alias("rater_id"),
        pl.col(score).cast(pl.Float64).alias("score"),
        scale.to_template(pl.col(score).cast(pl.Float64)).alias("score_template"),
    ).cast(RATINGS_SCHEMA)


def dist_column(counts: np.ndarray, bin_values: Sequence[float], kind: str) -> pl.Series:
    """10-bin template distributions (one list per row; null where a row has no votes)."""
    d = histogram_to_template(np.asarray(bin_values, dtype=np.float64), counts, SCALES[kind])
    s = pl.Series("dist", d, dtype=pl.Array(pl.Float64, d.shape[1])).cast(pl.List(pl.Float64))
    ok = pl.Series(~np.isnan(d).any(axis=1))
    return pl.select(pl.when(ok).then(s).otherwise(None).alias("dist")).to_series()


def generic_table(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    """Canonical generic scores from image_id, mean and optional std, n_votes, dist, attr_* columns."""
    scale = SCALES[kind]

    def col(name, dtype):
        return pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype=dtype).alias(name)

    base = [
        pl.lit(kind).alias("source"), pl.col("image_id"), pl.col("mean").cast(pl.Float64),
        col("std", pl.Float64), col("n_votes", pl.Int64),
        scale.to_template(pl.col("mean").cast(pl.Float64)).alias("mean_template"),
        col("dist", pl.List(pl.Float64)),
    ]
    attrs = sorted(c for c in df.columns if c.startswith("attr_"))
    out = df.select(*base, *[pl.col(a).cast(pl.Float64) for a in attrs])
    return out.cast(GENERIC_SCORES_SCHEMA | {a: pl.Float64 for a in attrs})


def generic_from_ratings(kind: str, ratings: pl.DataFrame, attrs: Sequence[str] = (),
                         extra: pl.DataFrame | None = None) -> pl.DataFrame:
    """mean / std / n_votes / dist of per-rater ratings (``image_id``, Float64 ``score``, attr columns).

    ``dist`` is the histogram of the ratings on the 10 template bins (each
    rating to the nearest bin). Attribute columns are averaged over non-null
    values. Images keep the order of their first rating.
    """
    scale = SCALES[kind]
    tvals = scale.template_values
    t = np.asarray(scale.to_template(ratings["score"].to_numpy().astype(np.float64)))
    bins = np.abs(t[:, None] - tvals[None, :]).argmin(axis=1) if len(t) else np.zeros(0, dtype=np.int64)
    r = ratings.with_columns(pl.Series("_bin", bins, dtype=pl.Int64))
    agg = r.group_by("image_id", maintain_order=True).agg(
        pl.col("score").mean().alias("mean"),
        pl.col("score").std(ddof=1).alias("std"),
        pl.len().cast(pl.Int64).alias("n_votes"),
        *[pl.col(a).mean().alias(f"attr_{a}" if not a.startswith("attr_") else a) for a in attrs],
        pl.col("_bin").alias("_bins"),
    )
    counts = np.zeros((agg.height, len(tvals)))
    if agg.height:
        lens = agg["_bins"].list.len().to_numpy()
        rows = np.repeat(np.arange(agg.height), lens)
        np.add.at(counts, (rows, agg["_bins"].explode().to_numpy().astype(np.int64)), 1.0)
    agg = agg.drop("_bins").with_columns(
        pl.Series("dist", counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), dtype=pl.Array(pl.Float64, 10))
        .cast(pl.List(pl.Float64))
    )
    if extra is not None:  # preferred aggregates (e.g. a published mean) override per column
        agg = agg.join(extra, on="image_id", how="left", suffix="_pref", maintain_order="left")
        for c in extra.columns:
            if c != "image_id" and f"{c}_pref" in agg.columns:
                agg = agg.with_columns(pl.coalesce(pl.col(f"{c}_pref"), pl.col(c)).alias(c)).drop(f"{c}_pref")
    return generic_table(kind, agg)


def splits_table(kind: str, df: pl.DataFrame, images: pl.DataFrame) -> pl.DataFrame:
    """Canonical official splits (image_id, split), kept only for images the adapter returns."""
    keep = images.select("image_id")
    out = df.select("image_id", "split").unique("image_id", keep="first", maintain_order=True)
    out = out.join(keep, on="image_id", how="semi", maintain_order="left")
    return out.select(pl.lit(kind).alias("source"), "image_id", "split").cast(OFFICIAL_SPLITS_SCHEMA)


def profiles_table(kind: str, df: pl.DataFrame) -> pl.DataFrame:
    """Canonical user profiles from whatever of the schema's columns ``df`` has (others null)."""
    cols = []
    for name, dtype in USER_PROFILES_SCHEMA.items():
        if name == "source":
            cols.append(pl.lit(kind).alias("source"))
        elif name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(cols).cast(USER_PROFILES_SCHEMA)


def aggregate_only(
    kind: str,
    df: pl.DataFrame,
    checker: Checker,
    *,
    user_profiles: pl.DataFrame | None = None,
    splits: pl.DataFrame | None = None,
) -> SourceTables:
    """Tables of a source with one score per image: ``df`` holds image_id, path, theme?, mean, std?,
    n_votes?, dist?, attr_*; ratings get one row per image with a null rater."""
    images = images_table(kind, df)
    ratings = ratings_table(kind, df, score="mean")
    generic = generic_table(kind, df)
    return SourceTables(
        images=images,
        ratings=ratings,
        generic_scores=generic,
        user_profiles=user_profiles if user_profiles is not None else empty(USER_PROFILES_SCHEMA),
        official_splits=splits_table(kind, splits, images) if splits is not None else empty(OFFICIAL_SPLITS_SCHEMA),
        dropped=checker.dropped,
    )
