"""The row checker: row-level checks of one source, shared by every adapter.

Checks are vectorised: each finds the offending rows with one polars
expression and hands them to :meth:`Checker.flag`, which raises a
:class:`RawDataError` on the first one (``on_bad_rows="error"``) or drops them
all and records them (``on_bad_rows="drop"``). Kept apart from reading and
table building so the error/drop policy lives in one place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from aestimo.data.scales import Scale
from aestimo.data.sources.read import ROW
from aestimo.data.sources.schema import DROPPED_SCHEMA, RawDataError, empty

ON_BAD_ROWS = ("error", "drop")
_FIX = "fix or remove the row, or read the source with on_bad_rows='drop'"


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
