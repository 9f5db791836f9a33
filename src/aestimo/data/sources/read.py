"""Reading raw rating files into all-string polars frames, shared by every adapter.

Every reader returns an all-string frame with a ``_row`` column (``ROW``): the
1-based line number an editor shows (header included), or the sheet row for
xlsx, so that a bad row can be named in an error message. Structural problems
(missing file or column, empty file) always raise a :class:`RawDataError`;
bad rows go to the :class:`~aestimo.data.sources.check.Checker`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from aestimo.data.sources.schema import RawDataError

if TYPE_CHECKING:
    from aestimo.data.sources.check import Checker

ROW = "_row"


def require_file(path: Path, what: str = "") -> Path:
    """Raise a :class:`RawDataError` unless ``path`` is an existing file."""
    if not path.is_file():
        hint = f" ({what})" if what else ""
        raise RawDataError(
            path, None, None,
            f"file not found{hint}; put the data set's file at this path (layout in the project's docs/formats.md) "
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

