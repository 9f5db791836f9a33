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
