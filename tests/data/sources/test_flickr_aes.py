"""FLICKR-AES adapter: per-worker CSV with spaced header, optional score file with leading spaces."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.schema import GENERIC_SCORES_SCHEMA, IMAGES_SCHEMA, RATINGS_SCHEMA

A, B = "farm1_27_96361207_c200595017.jpg", "farm4_3_1234_abcdef0123.jpg"
CSV = [
    "worker, imagePair, score",
    f"AGXT2OHMTWBRS, {A}, 4",
    f"A3RVKW8M2N0C1, {A}, 5",
    f"AGXT2OHMTWBRS, {B}, 1",
    f"A3RVKW8M2N0C1, {B}, 2",
    f"A1Z9X8Y7W6V5U, {B}, 2",
]
RATINGS = "FLICKR-AES_image_labeled_by_each_worker.csv"


@pytest.fixture
def flickr(newdir, jpeg, text):
    def make(lines=CSV, images=(A, B), score_file=f" {A} 4.6\n{B} 1.666667\n"):
        root = newdir()
        text(root / RATINGS, "\n".join(lines) + "\n")
        jpeg(*[root / "40K" / i for i in images])
        if score_file is not None:
            text(root / "FLICKR-AES_image_score.txt", score_file)
        return root

    return make


def test_tables(flickr):
    root = flickr()
    t = read_source("flickr_aes", root)
    assert t.images.schema == pl.Schema(IMAGES_SCHEMA)
    assert t.ratings.schema == pl.Schema(RATINGS_SCHEMA)
    assert dict(t.generic_scores.schema) == GENERIC_SCORES_SCHEMA
    assert t.images["image_id"].to_list() == [f"flickr_aes:{A}", f"flickr_aes:{B}"]
    assert t.images["path"].to_list() == [str(root / "40K" / A), str(root / "40K" / B)]
    assert t.ratings["rater_id"].to_list() == ["AGXT2OHMTWBRS", "A3RVKW8M2N0C1", "AGXT2OHMTWBRS",
                                              "A3RVKW8M2N0C1", "A1Z9X8Y7W6V5U"]
    assert t.ratings["score"].to_list() == [4, 5, 1, 2, 2]
    g = t.generic_scores
    assert g["mean"].to_list() == pytest.approx([4.6, 1.666667])  # the published means win
    assert g["n_votes"].to_list() == [2, 3]
    assert g["std"][1] == pytest.approx(np.std([1, 2, 2], ddof=1))
    dist = np.array(g["dist"].to_list())
    # 1-5 scores sit on the five template (0.5..5): score s -> bin 2s - 1
    np.testing.assert_allclose(dist[1], [0, 1 / 3, 0, 2 / 3, 0, 0, 0, 0, 0, 0])
    assert t.official_splits.height == 0


def test_without_score_file_means_come_from_ratings(flickr):
    t = read_source("flickr_aes", flickr(score_file=None))
    assert t.generic_scores["mean"].to_list() == pytest.approx([4.5, 5 / 3])


@pytest.mark.parametrize(
    "row, cell, file, column",
    [
        (3, f"A3RVKW8M2N0C1, {A}, good", RATINGS, "score"),
        (3, f"A3RVKW8M2N0C1, {A}, 6", RATINGS, "score"),
        (3, f"A3RVKW8M2N0C1, {A}, 4.5", RATINGS, "score"),  # off the step
        (6, f"A3RVKW8M2N0C1, {B}, 3", RATINGS, "imagePair"),  # duplicate pair
    ],
)
def test_bad_ratings(flickr, raises_at, row, cell, file, column):
    lines = list(CSV)
    lines[row - 1] = cell
    raises_at(lambda: read_source("flickr_aes", flickr(lines=lines)), file, row, column)


def test_bad_score_file(flickr, raises_at):
    root = flickr(score_file=f"{A} 4.6\n {B} n/a\n")
    raises_at(lambda: read_source("flickr_aes", root), "FLICKR-AES_image_score.txt", 2, "mean")


def test_missing_image_and_column(flickr, raises_at):
    raises_at(lambda: read_source("flickr_aes", flickr(images=[A])), RATINGS, 4, "imagePair")
    lines = ["worker, image, score"] + CSV[1:]
    raises_at(lambda: read_source("flickr_aes", flickr(lines=lines)), RATINGS, 1, "imagePair")


def test_drop_mode(flickr):
    lines = list(CSV) + [f"AGXT2OHMTWBRS, {A}, 3", "X, nofile.jpg, 3", f"Y, {B}, 0"]
    t = read_source("flickr_aes", flickr(lines=lines), on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [2, 7, 8, 9]
    assert t.ratings.height == 4


# ----------------------------------------------------------------- whole-file problems, messages, images

MODES = ["error", "drop"]
SCORE = "FLICKR-AES_image_score.txt"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "score_file, row, column",
    [
        (f"{A},4.6\n{B},1.7\n", 1, None),  # commas: one cell per line
        ("<html>\n<body>Not found</body>\n</html>\n", 1, None),  # another file altogether
        ("other1.jpg 4.6\nother2.jpg 1.7\n", None, "filename"),  # names no rated image
        (f"{A} high\n{B} low\n", 1, "mean"),  # no line readable
    ],
)
def test_garbage_score_file_raises_in_both_modes(flickr, raises_at, mode, score_file, row, column):
    """A broken score file is never silently replaced by the ratings' means."""
    root = flickr(score_file=score_file)
    raises_at(lambda: read_source("flickr_aes", root, on_bad_rows=mode), SCORE, row, column)


@pytest.mark.parametrize("mode", MODES)
def test_wrong_delimiter_or_header_only_raises_in_both_modes(flickr, raises_at, mode):
    lines = [line.replace(",", ";") for line in CSV]
    raises_at(lambda: read_source("flickr_aes", flickr(lines=lines), on_bad_rows=mode), RATINGS, 1, "worker")
    raises_at(lambda: read_source("flickr_aes", flickr(lines=CSV[:1]), on_bad_rows=mode), RATINGS, None, None)


def test_header_row_is_the_real_header_line(flickr, raises_at):
    lines = ["", "", "worker, image, score", *CSV[1:]]  # blank lines above the header
    raises_at(lambda: read_source("flickr_aes", flickr(lines=lines)), RATINGS, 3, "imagePair")


@pytest.mark.parametrize("mode", MODES)
def test_braces_in_header_and_cells(flickr, raises_at, mode):
    """Header names and cells never become format templates."""
    lines = ["worker, imagePair, score, note{1}", *[f"{line}, {{0}}" for line in CSV[1:]]]
    lines[2] = f"A3RVKW8M2N0C1, {A}, 5"  # one cell short
    lines[3] = f"AGXT2OHMTWBRS, {B}, {{}}{{1}}, x"
    if mode == "error":
        e = raises_at(lambda: read_source("flickr_aes", flickr(lines=lines)), RATINGS, 3, None)
        assert "line has 3 cells, expected 4 (worker, imagePair, score, note{1})" in str(e)
    else:
        t = read_source("flickr_aes", flickr(lines=lines), on_bad_rows="drop")
        assert t.dropped.select("row", "column").rows() == [(3, None), (4, "score")]
        assert t.dropped["reason"][1] == "score '{}{1}' is not a number"


def test_long_cells_are_cut_in_messages(flickr, raises_at):
    lines = list(CSV)
    lines[2] = f"A3RVKW8M2N0C1, {A}, " + "9" * 30 + "x" * 500
    e = raises_at(lambda: read_source("flickr_aes", flickr(lines=lines)), RATINGS, 3, "score")
    assert "x" * 100 not in str(e) and "…" in str(e) and len(str(e)) < 400


@pytest.mark.parametrize("content", [b"", b"worker,imagePair,score\n"])
def test_image_file_that_is_not_an_image(flickr, raises_at, content):
    root = flickr()
    (root / "40K" / B).write_bytes(content)
    e = raises_at(lambda: read_source("flickr_aes", root), RATINGS, 4, "imagePair")
    assert B in str(e)
    t = read_source("flickr_aes", root, on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [4, 5, 6] and set(t.dropped["column"]) == {"imagePair"}
    assert t.images["image_id"].to_list() == [f"flickr_aes:{A}"]
