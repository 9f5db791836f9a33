"""Writing the files of a world so identical content gives identical bytes.

Text is written as UTF-8 bytes as given (no platform line ends); workbooks carry
fixed timestamps, so a file's sha256 in the manifest depends on its content only.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

_FIXED_TIME = datetime(2020, 1, 1, 0, 0, 0)


def fixed(x: float, nd: int = 4) -> str:
    """``x`` with ``nd`` decimals, never ``-0.000``."""
    s = f"{x:.{nd}f}"
    return "0." + "0" * nd if s.startswith("-0.") and float(s) == 0 else s


def write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    """Write a one-sheet workbook with byte-identical output for identical content."""
    from openpyxl import Workbook
    from openpyxl.writer.excel import ExcelWriter

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.properties.created = _FIXED_TIME
    wb.properties.modified = _FIXED_TIME
    wb.properties.creator = "aestimo.data.world"
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    # re-pack with fixed entry timestamps (zipfile stamps entries with the clock)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            dst.writestr(zi, src.read(info.filename))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue())
