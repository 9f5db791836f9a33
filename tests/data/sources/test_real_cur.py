"""REAL-CUR adapter: test_list.csv, images under images/<worker>/<int score>/."""

from __future__ import annotations

import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.schema import IMAGES_SCHEMA, RATINGS_SCHEMA

ROWS = ["worker,image_name,score", "u1,a.jpg,5", "u1,b.jpg,2", "u2,a.jpg,3"]


@pytest.fixture
def real_cur(newdir, jpeg, text):
    def make(lines=ROWS, images=("u1/5/a.jpg", "u1/2/b.jpg", "u2/3/a.jpg")):
        root = newdir()
        text(root / "test_list.csv", "\n".join(lines) + "\n")
        jpeg(*[root / "images" / p for p in images])
        return root

    return make


@pytest.mark.parametrize("header", [True, False])
def test_tables(real_cur, header):
    root = real_cur(lines=ROWS if header else ROWS[1:])
    t = read_source("real_cur", root)
    assert t.images.schema == pl.Schema(IMAGES_SCHEMA) and t.ratings.schema == pl.Schema(RATINGS_SCHEMA)
    assert t.images["image_id"].to_list() == ["real_cur:u1/a.jpg", "real_cur:u1/b.jpg", "real_cur:u2/a.jpg"]
    assert t.images["path"][0] == str(root / "images" / "u1" / "5" / "a.jpg")
    assert t.ratings["rater_id"].to_list() == ["u1", "u1", "u2"]
    assert t.generic_scores["mean"].to_list() == [5, 2, 3]
    assert t.generic_scores["n_votes"].to_list() == [1, 1, 1]


def test_bad_rows(real_cur, raises_at):
    raises_at(lambda: read_source("real_cur", real_cur(lines=ROWS[:2] + ["u1,b.jpg,2.5"])), "test_list.csv", 3,
              "score")
    raises_at(lambda: read_source("real_cur", real_cur(lines=ROWS + ["u1,a.jpg,5"])), "test_list.csv", 5,
              "image_name")
    # the image sits under the wrong score folder
    raises_at(lambda: read_source("real_cur", real_cur(images=("u1/4/a.jpg", "u1/2/b.jpg", "u2/3/a.jpg"))),
              "test_list.csv", 2, "image_name")


def test_drop_mode(real_cur):
    t = read_source("real_cur", real_cur(lines=ROWS + ["u3,c.jpg,x"]), on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [5] and t.ratings.height == 3


MODES = ["error", "drop"]


@pytest.mark.parametrize("mode", MODES)
def test_renamed_column_names_the_file(real_cur, raises_at, mode):
    lines = ["worker,image_name,rating", *ROWS[1:]]
    e = raises_at(lambda: read_source("real_cur", real_cur(lines=lines), on_bad_rows=mode), "test_list.csv", 1,
                  "score")
    assert "column missing" in str(e)


@pytest.mark.parametrize("head", ["image_name,score,worker", "score,worker,image_name"])
def test_header_recognised_wherever_its_names_stand(real_cur, head):
    order = head.split(",")
    rows = [dict(zip(ROWS[0].split(","), r.split(","))) for r in ROWS[1:]]
    lines = [head] + [",".join(r[c] for c in order) for r in rows]
    t = read_source("real_cur", real_cur(lines=lines))
    assert t.images["image_id"].to_list() == ["real_cur:u1/a.jpg", "real_cur:u1/b.jpg", "real_cur:u2/a.jpg"]
    assert t.ratings["score"].to_list() == [5, 2, 3]


@pytest.mark.parametrize("content", [b"", b"just text"])
def test_image_file_that_is_not_an_image(real_cur, raises_at, content):
    root = real_cur()
    (root / "images" / "u1" / "2" / "b.jpg").write_bytes(content)
    raises_at(lambda: read_source("real_cur", root), "test_list.csv", 3, "image_name")
    t = read_source("real_cur", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(3, "image_name")] and t.ratings.height == 2


def test_no_usable_row_raises_in_drop_mode(real_cur, raises_at):
    e = raises_at(lambda: read_source("real_cur", real_cur(images=()), on_bad_rows="drop"), "test_list.csv", 2,
                  "image_name")
    assert "none of the 3 data rows is usable" in str(e)
