"""EVA adapter: '='-delimited votes and users."""

from __future__ import annotations

import numpy as np
import pytest

from aestimo.data.sources import read_source

HEAD = "image_id=user_id=score=difficulty=visual=composition=quality=semantic=vote_time=1=2=3=4"
ROWS = [
    HEAD,
    "100=u1=7=1=2=3=4=1=2020-01-01 10:00:00=0=0=0=0",
    "100=u2=5=2=2=3=3=1=2020-01-01 10:01:00=0=0=0=0",
    "101=u1=10=1=1=1=1==2020-01-01 10:02:00=0=0=0=0",
]
USERS = ["user_id=age=gender=education=photo_experience", "u1=25-34=female=master=amateur",
         "u2=18-24=male=bachelor=none"]


@pytest.fixture
def eva(newdir, jpeg, text):
    def make(rows=ROWS, users=USERS, images=("100", "101")):
        root = newdir()
        text(root / "data" / "votes_filtered.csv", "\n".join(rows) + "\n")
        if users is not None:
            text(root / "data" / "users.csv", "\n".join(users) + "\n")
        jpeg(*[root / "images" / "EVA_together" / f"{i}.jpg" for i in images])
        return root

    return make


@pytest.mark.parametrize("header", [True, False])
def test_tables(eva, header):
    root = eva(rows=ROWS if header else ROWS[1:])
    t = read_source("eva", root)
    assert t.images["image_id"].to_list() == ["eva:100", "eva:101"]
    assert t.images["path"][0] == str(root / "images" / "EVA_together" / "100.jpg")
    assert t.ratings["rater_id"].to_list() == ["u1", "u2", "u1"]
    np.testing.assert_allclose(t.ratings["score_template"].to_numpy(), [1 + 7 * 0.9, 1 + 5 * 0.9, 10])
    g = t.generic_scores
    assert g["mean"].to_list() == [6, 10] and g["n_votes"].to_list() == [2, 1]
    assert g["attr_quality"].to_list() == [3.5, 1] and g["attr_semantic"].to_list() == [1, None]
    assert g["dist"][1].to_list() == [0] * 9 + [1]
    p = t.user_profiles
    assert p["rater_id"].to_list() == ["u1", "u2"] and p["photo_experience"].to_list() == ["amateur", "none"]
    assert p["education"].to_list() == ["master", "bachelor"] and p["big5_E"].null_count() == 2


def test_errors(eva, raises_at):
    raises_at(lambda: read_source("eva", eva(rows=ROWS + ["101=u2=11=1=1=1=1=1=t=0=0=0=0"])),
              "votes_filtered.csv", 5, "score")
    raises_at(lambda: read_source("eva", eva(rows=ROWS + ["101=u1=3=1=1=1=1=1=t=0=0=0=0"])),
              "votes_filtered.csv", 5, "image_id")
    raises_at(lambda: read_source("eva", eva(rows=ROWS + ["101=u2=3=1=9=1=1=1=t=0=0=0=0"])),
              "votes_filtered.csv", 5, "visual")
    raises_at(lambda: read_source("eva", eva(images=("100",))), "votes_filtered.csv", 4, "image_id")
    raises_at(lambda: read_source("eva", eva(users=USERS + ["u1=1=f=x=y"])), "users.csv", 4, "user_id")


def test_drop_mode(eva):
    t = read_source("eva", eva(rows=ROWS + ["102=u1=3=1=1=1=1=1=t=0=0=0=0", "101=u2=abc=1=1=1=1=1=t=0=0=0=0"]),
                    on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [5, 6] and t.ratings.height == 3


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_header_recognised_wherever_its_names_stand(eva, mode):
    cols = HEAD.split("=")
    order = ["user_id", "score", "image_id", *cols[3:]]
    rows = [dict(zip(cols, r.split("="))) for r in ROWS[1:]]
    lines = ["=".join(order)] + ["=".join(r[c] for c in order) for r in rows]
    t = read_source("eva", eva(rows=lines), on_bad_rows=mode)
    assert t.dropped.height == 0
    assert t.images["image_id"].to_list() == ["eva:100", "eva:101"]
    assert t.ratings["rater_id"].to_list() == ["u1", "u2", "u1"]
    assert t.generic_scores["mean"].to_list() == [6, 10]


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_renamed_required_column_names_the_file(eva, raises_at, mode):
    rows = [HEAD.replace("score", "rating", 1), *ROWS[1:]]
    raises_at(lambda: read_source("eva", eva(rows=rows), on_bad_rows=mode), "votes_filtered.csv", 1, "score")


@pytest.mark.parametrize("content", [b"", b"<html></html>"])
def test_image_file_that_is_not_an_image(eva, raises_at, content):
    root = eva()
    (root / "images" / "EVA_together" / "101.jpg").write_bytes(content)
    raises_at(lambda: read_source("eva", root), "votes_filtered.csv", 4, "image_id")
    t = read_source("eva", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(4, "image_id")] and t.ratings.height == 2


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_comma_separated_votes_raise(eva, raises_at, mode):
    rows = [r.replace("=", ",") for r in ROWS[1:]]
    raises_at(lambda: read_source("eva", eva(rows=rows), on_bad_rows=mode), "votes_filtered.csv", 1, None)
