"""AADB's per-rater file (``AllinAll.csv``, the AMT batch results): ratings with rater ids, and
bad cells named by file, line and the slot's column."""

from __future__ import annotations

import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.aadb import ATTRS

NAMES = {"a": "farm1_11_111_aaa.jpg", "b": "farm2_22_222_bbb.jpg", "c": "farm3_33_333_ccc.jpg",
         "d": "farm4_44_444_ddd.jpg"}
SPLITS = {"Train": ["a", "b"], "Validation": ["c"], "Test": ["d"]}
LABEL = {"a": "0.625", "b": "0.25", "c": "0", "d": "0.5"}
HEADER = ["HITId", "Title", "WorkerId", "Input.image_url1", "Input.image_url2", "Input.image_url3",
          "Answer.DoF1", "Answer.overallScore1", "Answer.overallScore2", "Answer.overallScore3", "Approve"]


def url(key: str) -> str:
    farm, server, rest = NAMES[key].split("_", 2)
    return f"http://{farm}.staticflickr.com/{server}/{rest}"


def row(worker, images, scores, hit="H1"):
    """A batch-results line: quoted cells, a title holding a comma, three photo slots."""
    cells = [hit, "Rate photos, then attributes", worker, *[url(k) if k in NAMES else k for k in images],
             "Neutral", *scores, ""]
    return ",".join(f'"{c}"' for c in cells)


def _lines(w2_third=("", "0")):
    return [",".join(f'"{h}"' for h in HEADER),
            row("W1", ["a", "b", "c"], ["5", "3", "1"]),
            row("W2", ["a", "b", w2_third[0]], ["4", "2", w2_third[1]])]


@pytest.fixture
def aadb(newdir, jpeg, text):
    def make(lines=None, name="AllinAll.csv", per_rater=True):
        root = newdir()
        for split, keys in SPLITS.items():
            for attr in ["score", *ATTRS]:
                value = (lambda k: LABEL[k]) if attr == "score" else (lambda k: "0.2")
                text(root / "imgListFiles_label" / f"imgList{split}Regression_{attr}.txt",
                     "".join(f"{NAMES[k]} {value(k)}\n" for k in keys))
        jpeg(*[root / "datasetImages_originalSize" / n for n in NAMES.values()])
        if per_rater:
            text(root / name, "\n".join(_lines() if lines is None else lines) + "\n")
        return root

    return make


def test_ratings_carry_rater_ids(aadb):
    t = read_source("aadb", aadb())
    r = t.ratings
    got = {(i.removeprefix("aadb:"), w, s) for i, w, s in r.select("image_id", "rater_id", "score").iter_rows()}
    n = NAMES
    assert got == {(n["a"], "W1", 1.0), (n["b"], "W1", 0.5), (n["c"], "W1", 0.0),
                   (n["a"], "W2", 0.75), (n["b"], "W2", 0.25),  # W2's third slot (score 0) is skipped
                   (n["d"], None, 0.5)}  # labelled, rated by nobody: one aggregate row
    assert r["score_template"].to_list() == pytest.approx([1 + 9 * s for s in r["score"].to_list()])
    g = t.generic_scores.with_columns(pl.col("image_id").str.strip_prefix("aadb:"))
    a = g.filter(pl.col("image_id") == n["a"]).row(0, named=True)
    assert a["mean"] == 0.625 and a["n_votes"] == 2 and a["std"] == pytest.approx(0.1767767)  # mean: label file
    assert a["dist"] is not None and a["attr_light"] == 0.2
    d = g.filter(pl.col("image_id") == n["d"]).row(0, named=True)
    assert d["n_votes"] is None and d["dist"] is None and d["mean"] == 0.5
    assert t.official_splits["split"].to_list() == ["train", "train", "val", "test"]


def test_other_file_name_and_no_file(aadb):
    t = read_source("aadb", aadb(name="AADB_AllinAll.csv"))
    assert set(t.ratings["rater_id"].drop_nulls()) == {"W1", "W2"}
    t = read_source("aadb", aadb(per_rater=False))  # aggregate only, as before
    assert t.ratings["rater_id"].null_count() == t.ratings.height == 4


def test_photo_names_from_urls_and_plain_names(aadb):
    lines = _lines()
    lines[2] = row("W2", ["a", "b", NAMES["d"]], ["4", "2", "3"])  # a plain image name, not a URL
    t = read_source("aadb", aadb(lines))
    assert t.ratings.filter(pl.col("rater_id") == "W2").height == 3


@pytest.mark.parametrize("cell, slot, value", [
    ("score", 2, "good"),  # not a number
    ("score", 2, "7"),  # outside 1..5
    ("score", 3, "2.5"),  # not a whole number
    ("url", 2, "http://farm2.staticflickr.com/"),  # not a photo URL
])
def test_malformed_rating_names_file_row_column(aadb, raises_at, cell, slot, value):
    lines = _lines(w2_third=("c", "2"))
    images, scores = ["a", "b", "c"], ["4", "2", "2"]
    if cell == "score":
        scores[slot - 1] = value
    else:
        images[slot - 1] = value
    lines[2] = row("W2", images, scores)
    column = f"Answer.overallScore{slot}" if cell == "score" else f"Input.image_url{slot}"
    e = raises_at(lambda: read_source("aadb", aadb(lines)), "AllinAll.csv", 3, column)
    assert f"AllinAll.csv, row 3, column '{column}'" in str(e)


def test_earliest_bad_row_raises_first(aadb, raises_at):
    lines = _lines()
    lines[1] = row("W1", ["a", "b", "c"], ["5", "3", "9"])  # row 2, slot 3
    lines[2] = row("W2", ["a", "b", "c"], ["7", "2", "1"])  # row 3, slot 1: a later row, an earlier slot
    raises_at(lambda: read_source("aadb", aadb(lines)), "AllinAll.csv", 2, "Answer.overallScore3")


def test_structural_problems(aadb, raises_at):
    lines = _lines()
    lines[2] = row("", ["a", "b", "c"], ["4", "2", "1"])
    raises_at(lambda: read_source("aadb", aadb(lines)), "AllinAll.csv", 3, "WorkerId")
    lines = _lines() + [row("W1", ["a"], ["4"]) + ',"extra"']  # 12 cells, header has 11
    raises_at(lambda: read_source("aadb", aadb(lines)), "AllinAll.csv", 4, None)
    lines = _lines() + [row("W1", ["a", "d", "c"], ["4", "2", "1"], hit="H2")]  # W1 rated a at row 2
    e = raises_at(lambda: read_source("aadb", aadb(lines)), "AllinAll.csv", 4, "Input.image_url1")
    assert "first at row 2" in str(e)
    header = [h for h in HEADER if h != "Answer.overallScore2"]
    lines = [",".join(f'"{h}"' for h in header)] + _lines()[1:]
    raises_at(lambda: read_source("aadb", aadb(lines)), "AllinAll.csv", 1, "Answer.overallScore2")
    other = [_lines()[0], row("W1", ["x.jpg", "y.jpg", "z.jpg"], ["4", "2", "1"])]  # another data set's photos
    raises_at(lambda: read_source("aadb", aadb(other)), "AllinAll.csv", None, None)


def test_drop_mode_keeps_the_good_slots(aadb):
    lines = _lines()
    lines[2] = row("W2", ["a", "b", "c"], ["4", "good", "1"])
    t = read_source("aadb", aadb(lines), on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(3, "Answer.overallScore2")]
    assert t.ratings.filter(pl.col("rater_id") == "W2").height == 2  # slots 1 and 3 of the same row
    assert t.ratings.height == 3 + 2 + 1
