"""The row checker: row-level checks of one source, shared by every adapter.

Checks are vectorised: each finds the offending rows with one polars
expression and hands them to :meth:`Checker.flag`, which raises a
:class:`RawDataError` on the first one (``on_bad_rows="error"``) or drops them
all and records them (``on_bad_rows="drop"``). Kept apart from reading and
table building so the error/drop policy lives in one place.

Whole-file problems raise in both modes. The readers of
:mod:`aestimo.data.sources.read` raise on the structural ones (missing,
empty, not UTF-8, header only, a required column missing, most lines with the
wrong number of cells); after the adapter has run, :meth:`Checker.finish`
(called by ``read_source``) raises for every file read through the checker
where

* more than half of the data rows are *unreadable*: a line with the wrong
  number of cells, or a cell the adapter needs that is empty or not a number
  (flagged with ``malformed=True``); out-of-range, off-step, repeated, or
  missing-image rows are ordinary bad rows, however many there are;
* no data row is usable at all (every one was dropped, whatever the reason).

Adapters add their own (an optional side file none of whose rows names an
image of the main file: :meth:`Checker.require_overlap`).

Images (:meth:`Checker.images_exist`, with ``require_images``): a rated image
whose file is missing, empty (0 bytes), or not an image (PIL cannot identify
a format from its header: a text file, an HTML page) is a bad row of the
ratings file, named by its row and image column.

Messages are built from literal text and values (never a format template
made from data), cut long values to 80 characters, and say that a cell is
empty rather than ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from aestimo.data.scales import Scale
from aestimo.data.sources.messages import DOCS, clip, message, plain, quoted, shown
from aestimo.data.sources.read import ROW
from aestimo.data.sources.schema import DROPPED_SCHEMA, RawDataError, empty

ON_BAD_ROWS = ("error", "drop")
_FIX = "fix or remove the row, or read the source with on_bad_rows='drop'"
_IMAGE_FIX = "add the image, read the source with require_images=False, or with on_bad_rows='drop'"
_MALFORMED = "_malformed"
_IMAGE_THREADS = 8  # image headers are read in a thread pool (file opens overlap on slow disks)
_IMAGE_POOL_MIN = 256  # fewer images are checked in this thread


@dataclass
class _File:
    header_row: int | None
    rows: int


class Checker:
    """Row-level checks of one source: raise on the first bad row, or drop and record bad rows."""

    def __init__(self, source: str, on_bad_rows: str = "error"):
        if on_bad_rows not in ON_BAD_ROWS:
            raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
        self.source = source
        self.drop = on_bad_rows == "drop"
        self._dropped: list[pl.DataFrame] = []
        self._files: dict[str, _File] = {}

    @property
    def dropped(self) -> pl.DataFrame:
        if not self._dropped:
            return empty(DROPPED_SCHEMA)
        return pl.concat(self._dropped).drop(_MALFORMED).sort("file", "row", maintain_order=True)

    # -- files

    def note_file(self, file: Path, header_row: int | None, rows: int) -> None:
        """Record a file's header line and number of data rows (the readers call this)."""
        self._files[str(file)] = _File(header_row, rows)

    def header_row(self, file: Path) -> int | None:
        """The line of ``file``'s header as read (1 when the file was not read through this checker)."""
        f = self._files.get(str(file))
        return f.header_row if f is not None else 1

    def finish(self) -> None:
        """Raise for a file whose rows are mostly unreadable, or none of whose rows is usable (drop mode)."""
        if not self._dropped:
            return
        d = pl.concat(self._dropped).unique(["file", "row"], keep="first", maintain_order=True)
        for name, info in self._files.items():
            mine = d.filter(pl.col("file") == name).sort("row")
            if info.rows == 0 or mine.height == 0:
                continue
            bad = mine.filter(pl.col(_MALFORMED))
            if bad.height * 2 > info.rows:
                first = bad.row(0, named=True)
                raise RawDataError(
                    name, first["row"], first["column"],
                    f"{bad.height} of {info.rows} data rows cannot be read (a wrong cell count, an empty or "
                    f"non-numeric cell; row {first['row']}: {first['reason']}); the file is not in the expected "
                    f"format (layout in {DOCS}): replace it with the data set's original file",
                )
            if mine.height >= info.rows:
                first = mine.row(0, named=True)
                raise RawDataError(
                    name, first["row"], first["column"],
                    f"none of the {info.rows} data rows is usable (row {first['row']}: {first['reason']}); "
                    "check the file, its images and the source's root",
                )

    # -- the policy

    def flag(
        self,
        df: pl.DataFrame,
        bad: pl.Expr,
        file: Path,
        column: str | None,
        reason: str | pl.Expr,
        hint: str = _FIX,
        *,
        malformed: bool = False,
    ) -> pl.DataFrame:
        """Rows of ``df`` where ``bad`` holds are bad: raise on the first, or drop and record them all.

        ``reason`` is computed on the whole frame before the bad rows are
        picked, so window expressions (``over``) see every row. A null reason
        reads "the cell is empty". ``malformed``: the rows cannot be read at
        all (see :meth:`finish`).
        """
        mask = df.select(bad.fill_null(False).alias("_bad")).to_series()
        if not mask.any():
            return df
        reason_expr = pl.lit(reason, dtype=pl.String) if isinstance(reason, str) else reason.cast(pl.String)
        bad_rows = (
            df.select(pl.col(ROW).alias("row"), reason_expr.fill_null("the cell is empty").alias("reason"))
            .filter(mask)
        )
        if not self.drop:
            first = bad_rows.sort("row").row(0, named=True)
            raise RawDataError(file, first["row"], column, f"{first['reason']}; {hint}")
        self._dropped.append(
            bad_rows.select(
                pl.lit(self.source).alias("source"), pl.lit(str(file)).alias("file"),
                pl.col("row").cast(pl.Int64), pl.lit(column, dtype=pl.String).alias("column"), pl.col("reason"),
                pl.lit(malformed).alias(_MALFORMED),
            )
        )
        return df.filter(~mask)

    # -- typed cells

    def required(self, df: pl.DataFrame, col: str, file: Path) -> pl.DataFrame:
        """An empty cell in ``col`` is a bad (unreadable) row."""
        return self.flag(df, pl.col(col).is_null() | (pl.col(col) == ""), file, col, f"{clip(col)} is empty",
                         malformed=True)

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
        reason = pl.when(empty_cell).then(pl.lit(f"{clip(col)} is empty")).otherwise(
            message(f"{clip(col)} ", shown(pl.col(col)), " is not a number"))
        df = self.flag(df, bad, file, col, reason, malformed=True)
        return df.with_columns(x.alias(out))

    def in_range(self, df: pl.DataFrame, col: str, lo: float, hi: float, file: Path,
                 label: str | None = None) -> pl.DataFrame:
        """A value outside ``[lo, hi]`` is a bad row (nulls pass)."""
        x = pl.col(col)
        what = label or col
        return self.flag(df, (x < lo - 1e-9) | (x > hi + 1e-9), file, what,
                         message(f"{clip(what)} ", plain(x), f" is outside the scale [{lo:g}, {hi:g}]"))

    def one_of(self, df: pl.DataFrame, col: str, values: Sequence[float], file: Path,
               label: str | None = None) -> pl.DataFrame:
        """A (numeric) value not in ``values`` is a bad row (nulls pass)."""
        x = pl.col(col)
        what = label or col
        ok = pl.any_horizontal([(x - v).abs() <= 1e-9 for v in values])
        return self.flag(df, ~ok, file, what,
                         message(f"{clip(what)} ", plain(x), f" is not one of {', '.join(f'{v:g}' for v in values)}"))

    def on_step(self, df: pl.DataFrame, col: str, lo: float, step: float, file: Path,
                label: str | None = None) -> pl.DataFrame:
        """A value off the grid ``lo + k * step`` is a bad row (nulls pass)."""
        k = (pl.col(col) - lo) / step
        what = label or col
        return self.flag(df, (k - k.round()).abs() > 1e-6, file, what,
                         message(f"{clip(what)} ", plain(pl.col(col)), f" is not a multiple of {step:g} from {lo:g}"))

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
                         message(f"{clip(col)} ", plain(x), " is not a vote count (a whole number >= 0)"))

    def unique(self, df: pl.DataFrame, keys: Sequence[str], file: Path, column: str, what: str) -> pl.DataFrame:
        """Repeated ``keys`` are bad rows: error at the first repeat, naming the first occurrence's row;
        drop mode drops every copy (the first one names the row that repeats it)."""
        row = pl.col(ROW)
        first = row.min().over(keys)
        second = row.bottom_k(2).max().over(keys)
        dup = pl.len().over(keys) > 1
        if not self.drop:
            dup = dup & (row != first)
        value = shown(pl.col(column)) if column in df.columns else pl.lit("")
        reason = (pl.when(row == first)
                  .then(message(f"{what} ", value, " repeats at row ", plain(second)))
                  .otherwise(message(f"{what} ", value, " repeats (first at row ", plain(first), ")")))
        return self.flag(df, dup, file, column, reason)

    def unique_across(self, df: pl.DataFrame, key: str, files: Sequence[Path], column: str,
                      what: str) -> pl.DataFrame:
        """``key`` repeated within or across ``files`` (rows carry ``_file`` = str(file) and ``_row``).

        Error mode: the first repeat (in file order, then row) names the first
        occurrence's file and row; drop mode drops every copy in every file.
        """
        order = {str(f): i for i, f in enumerate(files)}
        df = df.with_columns(pl.col("_file").replace_strict(order, return_dtype=pl.Int64).alias("_forder"))
        ranked = (pl.col("_forder") * (1 << 40) + pl.col(ROW)).rank("ordinal").over(key)
        firsts = df.sort("_forder", ROW).group_by(key, maintain_order=True).agg(
            pl.col("_file").first().alias("_f1"), pl.col(ROW).first().alias("_r1"),
            pl.col("_file").slice(1, 1).first().alias("_f2"), pl.col(ROW).slice(1, 1).first().alias("_r2"),
            pl.len().alias("_n"))
        df = df.join(firsts, on=key, how="left", maintain_order="left")
        name = lambda c: pl.col(c).str.extract(r"([^/\\]*)$", 1)  # noqa: E731
        reason = (pl.when(ranked == 1)
                  .then(message(f"{what} ", shown(pl.col(key)), " is listed again in ", name("_f2"), ", row ",
                                plain(pl.col("_r2"))))
                  .otherwise(message(f"{what} ", shown(pl.col(key)), " is listed more than once (first in ",
                                     name("_f1"), ", row ", plain(pl.col("_r1")), ")")))
        dup = pl.col("_n") > 1
        if not self.drop:
            dup = dup & (ranked > 1)
        df = df.with_columns(dup.alias("_dup"), reason.alias("_reason"))
        for f in files:
            df = self.flag(df, pl.col("_dup") & (pl.col("_file") == str(f)), f, column, pl.col("_reason"))
        return df.drop("_forder", "_f1", "_r1", "_f2", "_r2", "_n", "_dup", "_reason")

    def require_overlap(self, side: pl.DataFrame, key: str, main: pl.DataFrame, main_key: str, file: Path,
                        what: str, column: str | None = None) -> None:
        """Raise when ``side`` (rows of an optional side file) has rows but none matches ``main``: the
        side file belongs to another data set or version (a whole-file problem)."""
        if side.height == 0 or main.height == 0:
            return
        if side.join(main.select(pl.col(main_key).alias(key)).unique(), on=key, how="semi").height == 0:
            example = quoted(side[key][0])
            raise RawDataError(
                file, None, column,
                f"none of the file's {side.height} rows names {what} (e.g. {example}); the file belongs to "
                "another data set or release: replace it with this data set's original file or remove it",
            )

    # -- images

    def images_exist(self, df: pl.DataFrame, path_col: str, file: Path, column: str) -> pl.DataFrame:
        """Rows whose image file (absolute path in ``path_col``) is missing or is not an image are bad.

        Lists each image folder once (``os.scandir``) instead of one ``stat``
        per row; then opens every listed file with PIL, which reads only the
        header (in a thread pool for many files): an empty file, a text file or
        anything PIL cannot identify as an image is a bad row.
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
        df = self.flag(
            df.with_columns(found.is_null().alias("_missing")), pl.col("_missing"), file, column,
            message("no image file ", shown(pl.col(path_col), 200)), _IMAGE_FIX,
        ).drop("_missing")
        if df.height == 0:
            return df
        paths = df[path_col].unique(maintain_order=True)  # each image once, however many rows rate it
        problems = pl.DataFrame({path_col: paths, "_not_image": pl.Series(not_images(paths.to_list()),
                                                                             dtype=pl.String)})
        df = df.join(problems, on=path_col, how="left", maintain_order="left")
        return self.flag(
            df, pl.col("_not_image").is_not_null(), file, column,
            message("image file ", shown(pl.col(path_col), 200), " ", pl.col("_not_image")),
            "replace the file with the image, read the source with require_images=False, or with "
            "on_bad_rows='drop'",
        ).drop("_not_image")


def not_images(paths: list[str]) -> list[str | None]:
    """For each path: None when PIL identifies an image from its header, else why not."""
    if len(paths) < _IMAGE_POOL_MIN:
        return [_not_image(p) for p in paths]
    with ThreadPoolExecutor(max_workers=_IMAGE_THREADS) as pool:
        return list(pool.map(_not_image, paths, chunksize=64))


def _not_image(path: str) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):  # reads the header only; the pixels are never decoded
            return None
    except Image.DecompressionBombError:
        return None  # an image, only a very large one
    except UnidentifiedImageError:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = -1
        if size == 0:
            return "is empty (0 bytes), not an image"
        return "is not an image (no image format recognised in its header)"
    except PermissionError:
        return "cannot be read (permission denied)"
    except OSError as e:
        return "cannot be read (" + clip(e.strerror or type(e).__name__, 60) + ")"


def _list_dir(d: str) -> list[str]:
    try:
        with os.scandir(d or ".") as it:
            return [e.name for e in it if e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError as e:
        raise RawDataError(d, None, None, "cannot list the image folder (permission denied); give the user "
                           "running the pipeline read access to it, or read the source with "
                           "require_images=False") from e
    except OSError as e:
        raise RawDataError(d, None, None, f"cannot list the image folder ({clip(e.strerror or e, 80)})") from e
