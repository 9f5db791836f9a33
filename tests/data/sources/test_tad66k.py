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
