"""Reading raw rating files into all-string polars frames, shared by every adapter.

Every reader returns an all-string frame with a ``_row`` column (``ROW``): the
1-based line number an editor shows (header included), or the sheet row for
xlsx, so that a bad row can be named in an error message. Bad rows go to the
:class:`~aestimo.data.sources.check.Checker`; whole-file problems always raise
a :class:`RawDataError` naming the file (and the line where there is one),
with ``on_bad_rows="drop"`` as well as ``"error"``:

* the file is missing, or holds no non-blank line (empty);
* the text is not UTF-8: a UTF-16/UTF-32 byte-order mark, a NUL byte (binary
  or UTF-16 data), or a byte sequence that is not UTF-8 (e.g. Latin-1 ``é``),
  named by its line. Text is never decoded with replacement characters, so a
  Latin-1 id cannot silently become ``U+FFFD``;
* a header without data rows, a header name that repeats, a required column
  missing from the header (named at the header's own line);
* more than half of the data lines do not split into the expected number of
  cells (a wrong delimiter, another file's layout, garbage text); fewer such
  lines are bad rows;
* an xlsx workbook that cannot be read, or whose first sheet has no data row.

What counts as a whole-file problem after the row checks (most rows
unreadable, no row usable) is decided by :meth:`Checker.finish`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from aestimo.data.sources.messages import DOCS, clip, message, names as listed
from aestimo.data.sources.schema import RawDataError

if TYPE_CHECKING:
    from aestimo.data.sources.check import Checker

ROW = "_row"
_REPLACE = "replace it with the data set's original file"
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def image_folder(root: Path, candidates: list[str], require_images: bool, fallback: str) -> str:
    """The first of ``candidates`` that is a folder under ``root``; without one, an error when
    images are required, else ``fallback`` (paths are then recorded but never opened)."""
    found = next((d for d in candidates if (root / d).is_dir()), None)
    if found is not None:
        return found
    if require_images:
        raise RawDataError(root / candidates[0], None, None,
                           f"no image folder (looked for {', '.join(candidates)}); add the images or read "
                           "the source with require_images=False")
    return fallback


def require_file(path: Path, what: str = "") -> Path:
    """Raise a :class:`RawDataError` unless ``path`` is an existing file."""
    if not path.is_file():
        hint = f" ({what})" if what else ""
        raise RawDataError(
            path, None, None,
            f"file not found{hint}; put the data set's file at this path (layout in the project's {DOCS}) "
            "or point the source's root at the folder that holds it",
        )
    return path


def read_text(path: Path) -> str:
    """The text of a UTF-8 file (a UTF-8 BOM removed); raise naming the file and line when it is not UTF-8."""
    require_file(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RawDataError(path, None, None, f"cannot read the file ({clip(e.strerror or e, 120)})") from e
    for bom, name in _BOMS.items():
        if data.startswith(bom):
            raise RawDataError(path, None, None, f"the file is {name} text (it starts with a {name} byte-order "
                               f"mark); save it as UTF-8 or {_REPLACE}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        col = len(data[start:e.start].decode("utf-8", errors="replace")) + 1
        raise RawDataError(
            path, line, None,
            f"byte 0x{data[e.start]:02x} at character {col} of the line is not UTF-8 (the file is in another "
            f"encoding, e.g. Latin-1, or is not text); save it as UTF-8 or {_REPLACE}",
        ) from None
    text = text.removeprefix("\ufeff")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise RawDataError(path, line, None, f"the file holds NUL bytes (binary data, or UTF-16 text without a "
                           f"byte-order mark); save it as UTF-8 text or {_REPLACE}")
    return text


def _lines(path: Path) -> pl.DataFrame:
    """Non-blank lines of a UTF-8 text file with their 1-based line numbers (BOM and CR removed)."""
    text = read_text(path)
    lines = pl.Series("line", text.split("\n"), dtype=pl.String).str.strip_suffix("\r")
    df = lines.to_frame().with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    df = df.filter(pl.col("line").str.strip_chars() != "")
    if df.height == 0:
        raise RawDataError(path, None, None, f"file is empty; {_REPLACE}")
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


def _clean(cell: str) -> str:
    c = cell.strip()
    if c.startswith('"'):
        c = c[1:]
    if c.endswith('"'):
        c = c[:-1]
    return c.strip()


def _separated(separator: str | None) -> str:
    return "runs of whitespace" if separator is None else f"'{separator}'"


def read_table(
    path: Path,
    checker: Checker,
    separator: str | None = ",",
    names: Sequence[str] | None = None,
    header: bool | str = True,
    *,
    required: Iterable[str] = (),
    header_keys: Iterable[str] | None = None,
    fit_names: int | None = None,
) -> pl.DataFrame:
    """Read a delimited text file into an all-string frame with a ``_row`` column.

    ``separator=None`` splits on runs of whitespace (leading spaces ignored).
    ``header``: True (first non-blank line is the header), False (no header;
    ``names`` gives the columns), or ``"auto"`` (the first line is a header
    when one of its cells, wherever it stands, is one of ``header_keys``,
    default ``names[0]``; its columns are then taken by name). ``fit_names=k``:
    without a header, use as many of ``names`` as the first line has cells
    when that is at least ``k``. ``required``: columns the header must have
    (checked before the cell counts, named at the header's line). Column names
    and cells are stripped of surrounding spaces and one pair of double quotes
    (no quoted separators inside cells: none of the formats has them). A data
    line with a different number of cells than the header is a bad row
    (column None); more than half of them is a whole-file problem.
    """
    df = _split(_lines(path), separator)
    first = [_clean(c) for c in df.row(0, named=True)["_fields"]]
    header_row = int(df[ROW][0])
    if header == "auto":
        keys = set(header_keys if header_keys is not None else (names or [])[:1])
        header = any(c in keys for c in first)
    if header:
        cols = first
        df = df.slice(1)
        if df.height == 0:
            raise RawDataError(path, None, None, f"file has a header but no data rows; {_REPLACE}")
        seen: set[str] = set()
        for c in cols:
            if c in seen:
                raise RawDataError(path, header_row, c, "column name repeats in the header; rename one of them")
            seen.add(c)
    else:
        header_row = None
        cols = list(names or [])
        if fit_names is not None and fit_names <= len(first) <= len(cols):
            cols = cols[: len(first)]
    checker.note_file(path, header_row, df.height)
    require_columns(pl.DataFrame(schema={c: pl.String for c in cols}), path, required, header_row)
    n = len(cols)
    n_cells = pl.col("_fields").list.len()
    wrong = df.select((n_cells != n).alias("w"))["w"]
    if int(wrong.sum()) * 2 > df.height:
        row = int(df.filter(wrong)[ROW][0])
        got = int(df.filter(wrong)["_fields"].list.len()[0])
        raise RawDataError(
            path, row, None,
            f"{int(wrong.sum())} of {df.height} data lines do not have {n} cells separated by "
            f"{_separated(separator)} (line {row} has {got}); the file is not laid out as expected (another "
            f"delimiter, another file's layout, or not text of this data set): {_REPLACE} (layout in {DOCS})",
        )
    df = checker.flag(
        df, n_cells != n, path, None,
        message("line has ", n_cells.cast(pl.String), f" cells, expected {n} ({listed(cols)})"),
        malformed=True,
    )
    return df.select(pl.col(ROW), *[_cell(i).alias(c) for i, c in enumerate(cols)])


def read_xlsx(path: Path, checker: Checker | None = None, *, required: Iterable[str] = ()) -> pl.DataFrame:
    """Read the first sheet of an xlsx workbook as strings, ``_row`` = the sheet row (as Excel shows it).

    The header is the first non-empty row (a header name that repeats, or a
    ``required`` column missing from it, raises at that row); empty rows
    inside the table keep their numbers and are skipped.
    """
    import fastexcel

    require_file(path)
    try:
        sheet = fastexcel.read_excel(str(path)).load_sheet(0, header_row=None, dtypes="string")
        raw = sheet.to_polars()
    except Exception as e:  # noqa: BLE001 - any reader failure is a broken file
        raise RawDataError(path, None, None, f"cannot read the workbook ({clip(e, 160)}); {_REPLACE}") from e
    if raw.height < 2:
        raise RawDataError(path, None, None, f"sheet has no data rows; {_REPLACE}")
    header = [str(c).strip() if c is not None and str(c).strip() else f"__column{i}"
              for i, c in enumerate(raw.row(0))]
    first_row = _first_sheet_row(path)
    seen: set[str] = set()
    for c in header:
        if c in seen:
            raise RawDataError(path, first_row, c, "column name repeats in the header; rename one of them")
        seen.add(c)
    df = raw.slice(1).rename(dict(zip(raw.columns, header)))
    df = df.with_row_index(ROW, offset=first_row + 1).with_columns(pl.col(ROW).cast(pl.Int64))
    df = df.with_columns(pl.col(c).str.strip_chars() for c in header)
    df = df.filter(~pl.all_horizontal(pl.col(c).is_null() | (pl.col(c) == "") for c in header))
    if df.height == 0:
        raise RawDataError(path, None, None, f"sheet has no data rows; {_REPLACE}")
    require_columns(df, path, required, first_row)
    if checker is not None:
        checker.note_file(path, first_row, df.height)
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
    """Raise when the header lacks one of ``columns`` (named at ``header_row``, the header's line)."""
    have = [c for c in df.columns if c != ROW]
    for c in columns:
        if c not in df.columns:
            raise RawDataError(path, header_row, c, f"column missing from the header (found: {listed(have)}); "
                               "use the data set's original file or rename the column")
