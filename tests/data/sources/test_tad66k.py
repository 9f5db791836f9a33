"""TAD66K adapter: labels/merge/{train,test}.csv, images flat in TAD66K/."""

from __future__ import annotations

import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.schema import GENERIC_SCORES_SCHEMA

TRAIN = ["image,score", "1001.jpg,5.5", "1002.jpg,7.25"]
TEST = ["image,score", "2001.jpg,3.0"]


@pytest.fixture
def tad(newdir, jpeg, text):
    def make(train=TRAIN, test=TEST, images=("1001.jpg", "1002.jpg", "2001.jpg")):
        root = newdir()
        text(root / "labels/merge/train.csv", "\n".join(train) + "\n")
        if test is not None:
            text(root / "labels/merge/test.csv", "\n".join(test) + "\n")
        jpeg(*[root / "TAD66K" / i for i in images])
        return root

    return make


def test_tables(tad):
    root = tad()
    t = read_source("tad66k", root)
    assert dict(t.generic_scores.schema) == GENERIC_SCORES_SCHEMA
    assert t.images["image_id"].to_list() == ["tad66k:1001.jpg", "tad66k:1002.jpg", "tad66k:2001.jpg"]
    assert t.images["path"][2] == str(root / "TAD66K" / "2001.jpg")
    assert t.ratings["score"].to_list() == [5.5, 7.25, 3.0]
    assert t.ratings["score_template"].to_list() == pytest.approx([1 + 5.5 * 0.9, 1 + 7.25 * 0.9, 1 + 3 * 0.9])
    assert t.ratings["rater_id"].null_count() == 3
    assert t.generic_scores["dist"].null_count() == 3
    assert t.official_splits["split"].to_list() == ["train", "train", "test"]
    assert t.official_splits.schema == pl.Schema({"source": pl.String, "image_id": pl.String, "split": pl.String})


def test_errors(tad, raises_at):
    raises_at(lambda: read_source("tad66k", tad(test=None)), "labels/merge/test.csv", None, None)
    raises_at(lambda: read_source("tad66k", tad(train=TRAIN + ["1003.jpg,10.5"])), "train.csv", 4, "score")
    raises_at(lambda: read_source("tad66k", tad(test=TEST + ["1001.jpg,3"])), "test.csv", 3, "image")
    raises_at(lambda: read_source("tad66k", tad(test=["image,mos", "2001.jpg,3"])), "test.csv", 1, "score")
    raises_at(lambda: read_source("tad66k", tad(images=("1001.jpg", "2001.jpg"))), "train.csv", 3, "image")


def test_drop_mode(tad):
    t = read_source("tad66k", tad(test=TEST + ["1001.jpg,3", "2002.jpg,x"]), on_bad_rows="drop")
    assert sorted(zip(t.dropped["file"].str.split("/").list.last(), t.dropped["row"])) == [
        ("test.csv", 3), ("test.csv", 4), ("train.csv", 2)]
    assert t.images["image_id"].to_list() == ["tad66k:1002.jpg", "tad66k:2001.jpg"]


MODES = ["error", "drop"]


def test_repeat_across_files_names_the_first_occurrence(tad, raises_at):
    e = raises_at(lambda: read_source("tad66k", tad(test=TEST + ["1002.jpg,3"])), "test.csv", 3, "image")
    assert "first in train.csv, row 3" in str(e)
    t = read_source("tad66k", tad(test=TEST + ["1002.jpg,3"]), on_bad_rows="drop")
    reasons = dict(zip(t.dropped["file"].str.split("/").list.last(), t.dropped["reason"]))
    assert reasons == {"train.csv": "image '1002.jpg' is listed again in test.csv, row 3",
                       "test.csv": "image '1002.jpg' is listed more than once (first in train.csv, row 3)"}


@pytest.mark.parametrize("mode", MODES)
def test_whole_file_problems_raise_in_both_modes(tad, raises_at, mode):
    raises_at(lambda: read_source("tad66k", tad(test=["image,score"]), on_bad_rows=mode), "test.csv", None, None)
    raises_at(lambda: read_source("tad66k", tad(test=["image;score", "2001.jpg;3"]), on_bad_rows=mode),
              "test.csv", 1, "image")
    raises_at(lambda: read_source("tad66k", tad(test=["image,mos", "2001.jpg,3"]), on_bad_rows=mode),
              "test.csv", 1, "score")
    bad = ["image,score", "2001.jpg,x", "2002.jpg,", "2003.jpg,3"]  # 2 of 3 unreadable
    e = raises_at(lambda: read_source("tad66k", tad(test=bad), on_bad_rows=mode), "test.csv", 2, "score")
    if mode == "drop":
        assert "2 of 3 data rows cannot be read" in str(e)


def test_repeated_header_name(tad, raises_at):
    raises_at(lambda: read_source("tad66k", tad(test=["image,score,score", "2001.jpg,3,3"])), "test.csv", 1,
              "score")


@pytest.mark.parametrize("content", [b"", b"image,score\n"])
def test_image_file_that_is_not_an_image(tad, raises_at, content):
    root = tad()
    (root / "TAD66K" / "1002.jpg").write_bytes(content)
    raises_at(lambda: read_source("tad66k", root), "train.csv", 3, "image")
    t = read_source("tad66k", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(3, "image")] and t.images.height == 2


def test_empty_cell_says_empty(tad, raises_at):
    e = raises_at(lambda: read_source("tad66k", tad(train=TRAIN + [",5"])), "train.csv", 4, "image")
    assert "image is empty" in str(e) and "None" not in str(e)
