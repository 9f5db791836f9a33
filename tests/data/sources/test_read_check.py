"""The shared reading and checking helpers: encodings, messages built from data, the drop policy."""

from __future__ import annotations

import re

import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.check import Checker
from aestimo.data.sources.messages import clip, message, shown
from aestimo.data.sources.read import read_table, require_file
from aestimo.data.sources.schema import RawDataError

MODES = ["error", "drop"]


def test_bom_crlf_and_blank_lines_are_tolerated(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes("\ufeffa,b\r\n\r\nx,1\r\ny,2\r\n".encode("utf-8"))
    df = read_table(f, Checker("t"), separator=",")
    assert df.columns == ["_row", "a", "b"] and df["_row"].to_list() == [3, 4]


@pytest.mark.parametrize(
    "data, row, words",
    [
        ("a,b\nx,caf\u00e9\n".encode("latin-1"), 2, "0xe9"),  # Latin-1: raises, never U+FFFD
        ("a,b\nx,1\n".encode("utf-16"), None, "UTF-16"),
        ("a,b\nx,1\n".encode("utf-16-le"), 1, "NUL"),
        ("a,b\nx,1\n".encode("utf-32"), None, "UTF-32"),
    ],
)
def test_text_that_is_not_utf8_raises_naming_file_and_line(tmp_path, data, row, words):
    f = tmp_path / "t.csv"
    f.write_bytes(data)
    for mode in MODES:
        with pytest.raises(RawDataError) as ei:
            read_table(f, Checker("t", mode), separator=",")
        assert ei.value.file == str(f) and ei.value.row == row and words in str(ei.value)


def test_flag_computes_reasons_on_every_row_and_says_empty(tmp_path):
    df = pl.DataFrame({"_row": [2, 3, 4], "k": ["a", "b", "a"], "v": ["x", None, ""]})
    c = Checker("t", "drop")
    out = c.flag(df, pl.col("v").is_null() | (pl.col("v") == ""), tmp_path / "f", "v",
                 message("v=", pl.col("v"), " first ", pl.col("_row").min().over("k").cast(pl.String)))
    assert out.height == 1
    # row 3: a null value makes a null reason; row 4: the window saw row 2, which is not flagged
    assert c.dropped["reason"].to_list() == ["the cell is empty", "v= first 2"]


def test_messages_never_use_data_as_a_template(tmp_path):
    df = pl.DataFrame({"_row": [2], "note{1}": ["{0}{}{x}"]})
    c = Checker("t", "drop")
    c.number(df, "note{1}", tmp_path / "f")
    assert c.dropped["reason"].item() == "note{1} '{0}{}{x}' is not a number"


def test_long_values_and_names_are_cut():
    assert clip("x" * 100) == "x" * 79 + "…" and clip("short") == "short"
    got = pl.select(shown(pl.lit("y" * 300))).item()
    assert got == "'" + "y" * 79 + "…'"
    e = RawDataError("f.csv", 3, "c" * 300, "bad")
    assert e.column == "c" * 300 and "c" * 81 not in str(e)


def test_messages_point_only_to_the_projects_docs(tmp_path):
    """No message cites a file outside the repository; documentation means docs/formats.md."""
    with pytest.raises(RawDataError) as ei:
        require_file(tmp_path / "missing.csv")
    assert "docs/formats.md" in str(ei.value)
    f = tmp_path / "AVA.txt"
    f.write_text("1,2,3\n4,5,6\n")
    msgs = [str(ei.value)]
    for kind in ("ava", "tad66k", "para", "spaq", "koniq10k", "flickr_aes", "aadb", "eva", "real_cur"):
        with pytest.raises(RawDataError) as e2:
            read_source(kind, tmp_path, require_images=False)
        msgs.append(str(e2.value))
    for m in msgs:
        m = m.replace(str(tmp_path), "<root>")
        assert re.findall(r"[\w./-]+\.md\b", m) in ([], ["docs/formats.md"]), m
        assert "/home/" not in m and "site-packages" not in m, m
