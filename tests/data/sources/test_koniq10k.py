"""KonIQ-10k adapter: scores-and-distributions CSV (counts or fractions) and the sets file."""

from __future__ import annotations

import numpy as np
import pytest

from aestimo.data.sources import read_source

HEAD = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"
ROWS = [HEAD, "826373.jpg,0,10,40,40,10,100,3.5,0.81,61.2", "10001.jpg,20,30,0,0,0,50,1.6,0.49,12.5"]
FILE = "koniq10k_scores_and_distributions.csv"


@pytest.fixture
def koniq(newdir, jpeg, text):
    def make(rows=ROWS, sets=("training", "test"), images=("826373.jpg", "10001.jpg")):
        root = newdir()
        text(root / FILE, "\n".join(rows) + "\n")
        if sets is not None:
            lines = [rows[0] + ",set"] + [f"{r},{s}" for r, s in zip(rows[1:], sets)]
            text(root / "koniq10k_distributions_sets.csv", "\n".join(lines) + "\n")
        jpeg(*[root / "512x384" / i for i in images])
        return root

    return make


def test_tables(koniq):
    root = koniq()
    t = read_source("koniq10k", root)
    assert t.images["image_id"].to_list() == ["koniq10k:826373.jpg", "koniq10k:10001.jpg"]
    assert t.images["path"][0] == str(root / "512x384" / "826373.jpg")
    g = t.generic_scores
    assert g["mean"].to_list() == [3.5, 1.6] and g["std"].to_list() == [0.81, 0.49]
    assert g["n_votes"].to_list() == [100, 50]
    assert g["attr_mos_zscore"].to_list() == [61.2, 12.5]
    # c1..c5 (scores 1..5) land on the five template's bins 1.0, 2.0, ..., 5.0 (indices 1, 3, 5, 7, 9)
    np.testing.assert_allclose(g["dist"][0].to_list(), [0, 0, 0, 0.1, 0, 0.4, 0, 0.4, 0, 0.1])
    assert t.ratings["score"].to_list() == [3.5, 1.6] and t.ratings["rater_id"].null_count() == 2
    assert t.official_splits["split"].to_list() == ["train", "test"]


def test_fractions_without_total(koniq):
    rows = ["image_name,c1,c2,c3,c4,c5,MOS", "826373.jpg,0,0.1,0.4,0.4,0.1,3.5", "10001.jpg,0.4,0.6,0,0,0,1.6"]
    t = read_source("koniq10k", koniq(rows=rows, sets=None))
    g = t.generic_scores
    assert g["n_votes"].to_list() == [None, None] and g["std"].null_count() == 2
    np.testing.assert_allclose(g["dist"][1].to_list(), [0, 0.4, 0, 0.6, 0, 0, 0, 0, 0, 0])
    assert t.official_splits.height == 0


def test_errors(koniq, raises_at):
    bad = [ROWS[0], ROWS[1], "10001.jpg,20,30,0,0,0,50,5.6,0.49,12.5"]
    raises_at(lambda: read_source("koniq10k", koniq(rows=bad)), FILE, 3, "MOS")
    bad = [ROWS[0], "826373.jpg,0,ten,40,40,10,100,3.5,0.81,61.2", ROWS[2]]
    raises_at(lambda: read_source("koniq10k", koniq(rows=bad)), FILE, 2, "c2")
    bad = [ROWS[0].replace(",MOS,", ",mos,"), *ROWS[1:]]
    raises_at(lambda: read_source("koniq10k", koniq(rows=bad)), FILE, 1, "MOS")
    raises_at(lambda: read_source("koniq10k", koniq(sets=("training", "holdout"))),
              "koniq10k_distributions_sets.csv", 3, "set")
    raises_at(lambda: read_source("koniq10k", koniq(images=("10001.jpg",))), FILE, 2, "image_name")
    raises_at(lambda: read_source("koniq10k", koniq(rows=[ROWS[0]])), FILE, None, None)  # header only


def test_drop_mode(koniq):
    rows = [*ROWS, "3.jpg,1,1,1,1,1,5,3,1.2,101"]
    t = read_source("koniq10k", koniq(rows=rows, sets=None), on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [4]
    assert set(t.dropped["column"].to_list()) == {"MOS_zscore"}
    assert t.images.height == 2


MODES = ["error", "drop"]


@pytest.mark.parametrize("mode", MODES)
def test_c_total_must_match_the_counts(koniq, raises_at, mode):
    bad = [ROWS[0], ROWS[1], "10001.jpg,20,30,0,0,0,60,1.6,0.49,12.5"]  # 20 + 30 = 50 votes, not 60
    root = koniq(rows=bad, sets=None)
    if mode == "error":
        e = raises_at(lambda: read_source("koniq10k", root), FILE, 3, "c_total")
        assert "sum to 50.0, neither c_total (60) nor 1" in str(e)
    else:
        t = read_source("koniq10k", root, on_bad_rows="drop")
        assert t.dropped.select("row", "column").rows() == [(3, "c_total")] and t.images.height == 1


def test_fractions_with_c_total_are_the_vote_count(koniq, raises_at):
    rows = [ROWS[0], "826373.jpg,0,0.1,0.4,0.4,0.1,100,3.5,0.81,61.2", "10001.jpg,0.4,0.6,0,0,0,50,1.6,0.49,12.5"]
    t = read_source("koniq10k", koniq(rows=rows, sets=None))
    assert t.generic_scores["n_votes"].to_list() == [100, 50]
    rows[2] = "10001.jpg,0.4,0.5,0,0,0,50,1.6,0.49,12.5"  # fractions summing to 0.9
    raises_at(lambda: read_source("koniq10k", koniq(rows=rows, sets=None)), FILE, 3, "c_total")


@pytest.mark.parametrize("mode", MODES)
def test_sets_file_naming_no_image_raises(koniq, text, raises_at, mode):
    root = koniq(sets=None)
    text(root / "koniq10k_distributions_sets.csv", "image_name,set\nx.jpg,training\ny.jpg,test\n")
    raises_at(lambda: read_source("koniq10k", root, on_bad_rows=mode), "koniq10k_distributions_sets.csv", None,
              "image_name")


@pytest.mark.parametrize("content", [b"", b"image_name,c1\n"])
def test_image_file_that_is_not_an_image(koniq, raises_at, content):
    root = koniq()
    (root / "512x384" / "10001.jpg").write_bytes(content)
    raises_at(lambda: read_source("koniq10k", root), FILE, 3, "image_name")
    t = read_source("koniq10k", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(3, "image_name")] and t.images.height == 1
