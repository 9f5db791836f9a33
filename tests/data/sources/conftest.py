"""Fixtures for the source adapter tests: tiny JPEGs and a RawDataError matcher."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from aestimo.data.sources.schema import RawDataError

_JPEG: bytes | None = None


def _jpeg_bytes() -> bytes:
    global _JPEG
    if _JPEG is None:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (120, 80, 40)).save(buf, format="JPEG")
        _JPEG = buf.getvalue()
    return _JPEG


@pytest.fixture
def jpeg():
    """``jpeg(path, ...)`` writes an 8x8 JPEG at every path given (parents created)."""

    def write(*paths: Path) -> None:
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(_jpeg_bytes())

    return write


@pytest.fixture
def text():
    """``text(path, content)`` writes a text file (parents created) and returns its path."""

    def write(path: Path, content: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def raises_at():
    """``raises_at(fn, file_suffix, row, column)`` runs fn and checks the RawDataError it raises."""

    def check(fn, file_suffix: str, row: int | None, column: str | None) -> RawDataError:
        with pytest.raises(RawDataError) as ei:
            fn()
        e = ei.value
        assert e.file.endswith(file_suffix), (e.file, str(e))
        assert e.row == row, str(e)
        assert e.column == column, str(e)
        assert file_suffix in str(e)
        return e

    return check


@pytest.fixture
def newdir(tmp_path):
    """``newdir()`` returns a new empty folder under tmp_path on every call."""
    count = iter(range(10**6))

    def make() -> Path:
        d = tmp_path / f"root{next(count)}"
        d.mkdir()
        return d

    return make
