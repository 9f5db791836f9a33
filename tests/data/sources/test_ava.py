"""AVA adapter: AVA.txt (no header, runs of spaces), images/{id}.jpg, generic_test.jpgl."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.schema import (
    DROPPED_SCHEMA,
    GENERIC_SCORES_SCHEMA,
    IMAGES_SCHEMA,
    OFFICIAL_SPLITS_SCHEMA,
    RATINGS_SCHEMA,
)

LINES = [
    "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396",
    "2  953958   10 20 0 0 0 0 0 0 0 0   0 0 1396",  # several spaces
    "3 954184 0 0 0 0 0 0 0 0 0 4 0 19 100",
]
IDS = ["953619", "953958", "954184"]


@pytest.fixture
def ava(newdir, jpeg, text):
    def make(lines=LINES, images=IDS, test_list="954184\n"):
        root = newdir()
        text(root / "AVA.txt", "\n".join(lines) + "\n")
        jpeg(*[root / "images" / f"{i}.jpg" for i in images])
        if test_list is not None:
            text(root / "aesthetics_image_lists" / "generic_test.jpgl", test_list)
        return root

    return make


def test_tables(ava):
    root = ava()
    t = read_source("ava", root)
    assert t.images.schema == pl.Schema(IMAGES_SCHEMA)
    assert t.ratings.schema == pl.Schema(RATINGS_SCHEMA)
    assert dict(t.generic_scores.schema) == GENERIC_SCORES_SCHEMA
    assert t.official_splits.schema == pl.Schema(OFFICIAL_SPLITS_SCHEMA)
    assert t.dropped.schema == pl.Schema(DROPPED_SCHEMA) and t.dropped.height == 0

    assert t.images["image_id"].to_list() == [f"ava:{i}" for i in IDS]
    assert t.images["path"].to_list() == [str(root / "images" / f"{i}.jpg") for i in IDS]
    assert t.images["theme"].to_list() == ["1", None, "19"]

    c = np.array([[0, 1, 5, 17, 38, 36, 15, 6, 5, 1], [10, 20] + [0] * 8, [0] * 9 + [4]], float)
    k = np.arange(1, 11)
    mean = c @ k / c.sum(1)
    g = t.generic_scores
    np.testing.assert_allclose(g["mean"].to_numpy(), mean)
    np.testing.assert_allclose(g["mean_template"].to_numpy(), mean)
    assert g["n_votes"].to_list() == [124, 30, 4]
    votes = np.repeat(k, c[0].astype(int))
    assert g["std"][0] == pytest.approx(votes.std(ddof=1))
    np.testing.assert_allclose(np.array(g["dist"].to_list()), c / c.sum(1, keepdims=True))

    r = t.ratings
    assert r["rater_id"].null_count() == 3
    np.testing.assert_allclose(r["score"].to_numpy(), mean)
    assert t.official_splits["split"].to_list() == ["train", "train", "test"]


def test_no_test_list_no_splits_and_images_optional(ava):
    root = ava(images=[], test_list=None)
    t = read_source("ava", root, require_images=False)
    assert t.images.height == 3 and t.official_splits.height == 0


def test_blank_lines_keep_editor_line_numbers(ava, raises_at):
    lines = [LINES[0], "", LINES[1].replace(" 20 ", " x ")]
    root = ava(lines=lines)
    raises_at(lambda: read_source("ava", root), "AVA.txt", 3, "c2")


@pytest.mark.parametrize(
    "line, row, column",
    [
        (1, 2, "c3"),  # non-numeric
        (2, 2, "c4"),  # not a whole count
        (3, 3, "image_id"),  # duplicate
        (4, 2, None),  # wrong number of fields
        (5, 2, "c1"),  # no votes
    ],
)
def test_bad_rows(ava, raises_at, line, row, column):
    lines = list(LINES)
    if line == 1:
        lines[1] = "2 953958 10 20 x 0 0 0 0 0 0 0 0 0 1396"
    elif line == 2:
        lines[1] = "2 953958 10 20 0 2.5 0 0 0 0 0 0 0 0 1396"
    elif line == 3:
        lines[2] = lines[2].replace("954184", "953619")
    elif line == 4:
        lines[1] = "2 953958 10 20 0 0 0 0 0 0 0 0 0 1396"
    else:
        lines[1] = "2 953958 0 0 0 0 0 0 0 0 0 0 0 0 1396"
    root = ava(lines=lines)
    e = raises_at(lambda: read_source("ava", root), "AVA.txt", row, column)
    assert "on_bad_rows='drop'" in str(e)


def test_missing_image(ava, raises_at):
    root = ava(images=IDS[:2])
    e = raises_at(lambda: read_source("ava", root), "AVA.txt", 3, "image_id")
    assert "954184.jpg" in str(e) and "require_images=False" in str(e)


def test_structural_errors(ava, raises_at, tmp_path):
    raises_at(lambda: read_source("ava", tmp_path), "AVA.txt", None, None)  # missing
    root = ava(lines=["  "])
    e = raises_at(lambda: read_source("ava", root, on_bad_rows="drop"), "AVA.txt", None, None)
    assert "empty" in str(e)


def test_drop_mode(ava):
    lines = list(LINES) + ["4 955000 1 1 1 1 1 1 1 1 1 1 0 0 5", "5 955001 1 1 1 1 1 1 1 1 1 1 0 0 5"]
    lines[0] = lines[0].replace(" 38 ", " abc ")
    lines.append(LINES[1])  # duplicate of line 2: both copies go
    root = ava(lines=lines, images=IDS + ["955001"])  # 955000 has no image
    t = read_source("ava", root, on_bad_rows="drop")
    assert t.images["image_id"].to_list() == ["ava:954184", "ava:955001"]
    d = t.dropped
    assert d["row"].to_list() == [1, 2, 4, 6]
    assert d["column"].to_list() == ["c5", "image_id", "image_id", "image_id"]
    assert d["source"].unique().to_list() == ["ava"]
    assert t.official_splits.height == 2


def test_full_size_speed(tmp_path):
    """255,000 rows (the full AVA.txt) read in seconds."""
    rng = np.random.default_rng(0)
    n = 255_000
    ids = np.arange(100000, 100000 + n)
    counts = rng.integers(0, 40, (n, 10))
    counts[:, 4] += 1
    extra = rng.integers(0, 60, (n, 3))
    table = np.column_stack([np.arange(1, n + 1), ids, counts, extra])
    np.savetxt(tmp_path / "AVA.txt", table, fmt="%d", delimiter=" ")
    t0 = time.perf_counter()
    t = read_source("ava", tmp_path, require_images=False)
    elapsed = time.perf_counter() - t0
    assert t.generic_scores.height == n
    assert elapsed < 20, elapsed


# ----------------------------------------------------------------- whole-file problems, messages, images

MODES = ["error", "drop"]


@pytest.mark.parametrize("mode", MODES)
def test_comma_separated_ava_raises_in_both_modes(ava, raises_at, mode):
    root = ava(lines=[",".join(line.split()) for line in LINES])
    e = raises_at(lambda: read_source("ava", root, on_bad_rows=mode), "AVA.txt", 1, None)
    assert "3 of 3 data lines do not have 15 cells" in str(e)


@pytest.mark.parametrize("mode", MODES)
def test_non_utf8_text_raises_naming_file_and_line(ava, raises_at, mode):
    root = ava()
    (root / "AVA.txt").write_bytes(("\n".join(LINES[:2]) + "\n3 9541é4 0 0 0 0 0 0 0 0 0 4 0 19 100\n")
                                   .encode("latin-1"))
    e = raises_at(lambda: read_source("ava", root, on_bad_rows=mode), "AVA.txt", 3, None)
    assert "0xe9" in str(e) and "UTF-8" in str(e)
    (root / "AVA.txt").write_text("\n".join(LINES) + "\n", encoding="utf-16")
    e = raises_at(lambda: read_source("ava", root, on_bad_rows=mode), "AVA.txt", None, None)
    assert "UTF-16" in str(e)
    (root / "AVA.txt").write_bytes(("\n".join(LINES) + "\n").encode("utf-16-le"))  # no BOM: NUL bytes
    raises_at(lambda: read_source("ava", root, on_bad_rows=mode), "AVA.txt", 1, None)


@pytest.mark.parametrize("mode", MODES)
def test_test_list_problems_raise(ava, raises_at, mode):
    root = ava()
    (root / "aesthetics_image_lists" / "generic_test.jpgl").write_bytes("953619\n95418é\n".encode("latin-1"))
    raises_at(lambda: read_source("ava", root, on_bad_rows=mode), "generic_test.jpgl", 2, None)
    root = ava(test_list="1\n2\n")  # names none of AVA.txt's ids
    e = raises_at(lambda: read_source("ava", root, on_bad_rows=mode), "generic_test.jpgl", None, None)
    assert "none of the file's 2 rows" in str(e)


@pytest.mark.parametrize("mode", MODES)
def test_mostly_unreadable_rows_raise_in_both_modes(ava, raises_at, mode):
    lines = [line.replace(" 0 ", " x ", 1) for line in LINES[:2]] + [LINES[2]]
    raises_at(lambda: read_source("ava", ava(lines=lines), on_bad_rows=mode), "AVA.txt", 1, "c1")


def test_duplicate_names_the_first_occurrence(ava, raises_at):
    lines = [*LINES, LINES[0].replace("1 953619", "4 953619", 1)]
    e = raises_at(lambda: read_source("ava", ava(lines=lines)), "AVA.txt", 4, "image_id")
    assert "repeats (first at row 1)" in str(e)
    d = read_source("ava", ava(lines=lines), on_bad_rows="drop").dropped
    assert d.select("row", "reason").rows() == [(1, "image_id '953619' repeats at row 4"),
                                                 (4, "image_id '953619' repeats (first at row 1)")]


@pytest.mark.parametrize("content", [b"", b"hello, I am text\n"])
def test_image_file_that_is_not_an_image(ava, raises_at, content):
    root = ava()
    (root / "images" / "953958.jpg").write_bytes(content)
    e = raises_at(lambda: read_source("ava", root), "AVA.txt", 2, "image_id")
    assert "953958.jpg" in str(e) and ("0 bytes" in str(e) or "not an image" in str(e))
    t = read_source("ava", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(2, "image_id")]
    assert t.images.height == 2


def test_image_check_reads_other_formats(ava):
    from PIL import Image

    root = ava()
    Image.new("RGB", (4, 4)).save(root / "images" / "953958.jpg", format="PNG")  # a PNG named .jpg is an image
    assert read_source("ava", root).images.height == 3
