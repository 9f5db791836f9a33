"""aestimo.data.splits as pure functions on tiny hand-made tables."""

from __future__ import annotations

import polars as pl
import pytest

from aestimo.data import splits
from aestimo.data.sources.schema import RawDataError


def _ratings(per_rater: dict[str, int], source: str = "para", prefix: str = "img") -> pl.DataFrame:
    """Rater r rates images {prefix}0 .. {prefix}{n-1} of ``source`` (images shared between raters)."""
    rows = [
        {"source": source, "image_id": f"{source}:{prefix}{i}", "rater_id": r, "score": 3.0}
        for r, n in per_rater.items()
        for i in range(n)
    ]
    return pl.DataFrame(rows, schema={"source": pl.String, "image_id": pl.String, "rater_id": pl.String,
                                      "score": pl.Float64})


def _people(source: str, *raters: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source": [source] * len(raters), "rater_id": list(raters), "n_ratings": [0] * len(raters),
         "selected_by": ["list"] * len(raters)},
        schema=splits.TEST_PEOPLE_SCHEMA,
    )


def _images(source: str, n: int, prefix: str = "img") -> pl.DataFrame:
    return pl.DataFrame({"image_id": [f"{source}:{prefix}{i}" for i in range(n)], "source": [source] * n})


NO_OFFICIAL = pl.DataFrame(schema=splits.GENERIC_SPLITS_SCHEMA)


# ----------------------------------------------------------------- read_user_list


def test_read_user_list_skips_blanks_and_comments(tmp_path):
    f = tmp_path / "users.txt"
    f.write_text("# held-out people\nA1\n\n  B2  \n# end\n")
    assert splits.read_user_list(f) == ["A1", "B2"]


def test_read_user_list_missing_file_names_parameter(tmp_path):
    with pytest.raises(FileNotFoundError, match="test_users.file"):
        splits.read_user_list(tmp_path / "nope.txt")


def test_read_user_list_empty_file_is_raw_data_error(tmp_path):
    f = tmp_path / "users.txt"
    f.write_text("# only a comment\n\n")
    with pytest.raises(RawDataError, match="empty") as err:
        splits.read_user_list(f)
    assert err.value.file == str(f)


# ----------------------------------------------------------------- select_test_users


RATERS = {"a": 5, "b": 12, "c": 20, "d": 30, "e": 15, "f": 25}


def test_select_test_users_from_list():
    ratings = pl.concat([_ratings(RATERS), _ratings({"a": 3}, source="flickr_aes")])
    out = splits.select_test_users(ratings, "para", listed=["c", "a"], count=1, min_ratings=100,
                                   max_ratings=None, seed=0)
    assert out.columns == list(splits.TEST_PEOPLE_SCHEMA)
    assert out.schema == pl.Schema(splits.TEST_PEOPLE_SCHEMA)
    # a list wins over the rule (count / min_ratings ignored); counts are this source's only
    assert dict(zip(out["rater_id"], out["n_ratings"])) == {"a": 5, "c": 20}
    assert set(out["selected_by"]) == {"list"}
    assert set(out["source"]) == {"para"}


def test_select_test_users_unknown_listed_id_raises():
    with pytest.raises(ValueError, match=r"para: test users \['zz'\]"):
        splits.select_test_users(_ratings(RATERS), "para", listed=["a", "zz"], count=None, min_ratings=0,
                                 max_ratings=None, seed=0)


def test_select_test_users_rule_range():
    out = splits.select_test_users(_ratings(RATERS), "para", listed=None, count=None, min_ratings=12,
                                   max_ratings=25, seed=0)
    assert sorted(out["rater_id"]) == ["b", "c", "e", "f"]
    assert set(out["selected_by"]) == {"rule"}


def test_select_test_users_count_is_seeded():
    ratings = _ratings({f"r{i:02d}": 10 + i for i in range(30)})
    pick = lambda seed: splits.select_test_users(  # noqa: E731
        ratings, "para", listed=None, count=5, min_ratings=0, max_ratings=None, seed=seed
    )["rater_id"].to_list()
    assert len(pick(0)) == 5 and len(set(pick(0))) == 5
    assert pick(0) == pick(0)
    assert any(pick(s) != pick(0) for s in (1, 2, 3))


def test_select_test_users_ignores_aggregate_rows():
    agg = pl.DataFrame({"source": ["para"] * 3, "image_id": ["x", "y", "z"], "rater_id": [None] * 3,
                        "score": [1.0, 2.0, 3.0]}, schema=_ratings({}).schema)
    out = splits.select_test_users(pl.concat([_ratings({"a": 2}), agg]), "para", listed=None, count=None,
                                   min_ratings=0, max_ratings=None, seed=0)
    assert out["rater_id"].to_list() == ["a"]


# ----------------------------------------------------------------- generic_splits


def _no_image_twice(tab: pl.DataFrame) -> None:
    assert tab["image_id"].is_unique().all()


def test_generic_splits_personal_and_official():
    # images 0..9 of para; the held-out person "p" rated 0..3, "q" (not held out) rated 0..9
    images = _images("para", 10)
    ratings = pl.concat([_ratings({"p": 4}), _ratings({"q": 10})])
    official = pl.DataFrame({
        "source": ["para"] * 10,
        "image_id": [f"para:img{i}" for i in range(10)],
        "split": ["test", "test", "test", "test", "train", "val", "test", "train", "train", "train"],
    })
    tab = splits.generic_splits(images, ratings, official, _people("para", "p"), val_fraction=0.2,
                                test_fraction=0.2, seed=0)
    assert tab.columns == list(splits.GENERIC_SPLITS_SCHEMA)
    _no_image_twice(tab)
    got = dict(zip(tab["image_id"], tab["split"]))
    assert all(got[f"para:img{i}"] == "personal" for i in range(4))
    # the official split is kept for everything else (val and test are not empty, nothing is drawn)
    assert [got[f"para:img{i}"] for i in range(4, 10)] == ["train", "val", "test", "train", "train", "train"]


def test_generic_splits_images_missing_from_official_are_train():
    images = _images("ava", 4)
    official = pl.DataFrame({"source": ["ava", "ava"], "image_id": ["ava:img0", "ava:img1"],
                             "split": ["test", "val"]})
    tab = splits.generic_splits(images, _ratings({}, source="ava"), official, _people("ava"),
                                val_fraction=0.5, test_fraction=0.5, seed=0)
    assert dict(zip(tab["image_id"], tab["split"])) == {
        "ava:img0": "test", "ava:img1": "val", "ava:img2": "train", "ava:img3": "train"}


def test_generic_splits_draws_empty_val_and_test_from_train():
    # PARA-like: the official test images are exactly the held-out person's, and no val part
    n = 200
    images = _images("para", n)
    ratings = _ratings({"p": 50})
    official = pl.DataFrame({"source": ["para"] * n, "image_id": images["image_id"],
                             "split": ["test"] * 50 + ["train"] * (n - 50)})
    kw = dict(val_fraction=0.1, test_fraction=0.2)
    tab = splits.generic_splits(images, ratings, official, _people("para", "p"), seed=3, **kw)
    _no_image_twice(tab)
    counts = dict(tab.group_by("split").len().iter_rows())
    assert counts["personal"] == 50
    assert counts.get("test", 0) > 0 and counts.get("val", 0) > 0
    assert counts["train"] + counts["val"] + counts["test"] == n - 50
    # drawn from the former train part only, never from personal
    assert set(tab.filter(pl.col("split") == "personal")["image_id"]) == {f"para:img{i}" for i in range(50)}
    again = splits.generic_splits(images, ratings, official, _people("para", "p"), seed=3, **kw)
    assert again.equals(tab)
    other = splits.generic_splits(images, ratings, official, _people("para", "p"), seed=4, **kw)
    assert not other.equals(tab)


def test_generic_splits_random_without_official_is_seeded_and_row_order_free():
    images = pl.concat([_images("koniq10k", 100), _images("spaq", 50)])
    kw = dict(val_fraction=0.1, test_fraction=0.2, seed=11)
    tab = splits.generic_splits(images, _ratings({}), NO_OFFICIAL, _people("koniq10k"), **kw)
    _no_image_twice(tab)
    assert tab.height == 150
    assert set(tab["split"]) == {"train", "val", "test"}
    shuffled = splits.generic_splits(images.sample(fraction=1.0, shuffle=True, seed=1), _ratings({}), NO_OFFICIAL,
                                     _people("koniq10k"), **kw)
    assert shuffled.sort("image_id").equals(tab.sort("image_id"))
    other = splits.generic_splits(images, _ratings({}), NO_OFFICIAL, _people("koniq10k"),
                                  val_fraction=0.1, test_fraction=0.2, seed=12)
    assert not other.equals(tab)


def test_generic_splits_zero_fractions_draw_nothing():
    images = _images("tad66k", 30)
    tab = splits.generic_splits(images, _ratings({}), NO_OFFICIAL, _people("tad66k"), val_fraction=0.0,
                                test_fraction=0.0, seed=0)
    assert set(tab["split"]) == {"train"}


# ----------------------------------------------------------------- fewshot_splits


def test_fewshot_support_and_query():
    ratings = _ratings({"p": 30, "q": 25, "x": 40})
    tab, skipped = splits.fewshot_splits(ratings, _people("para", "p", "q"), ks=[5, 10], repeats=3,
                                         min_query=5, seed=0)
    assert tab.schema == pl.Schema(splits.FEWSHOT_SCHEMA)
    assert skipped.height == 0
    assert set(tab["rater_id"]) == {"p", "q"}  # x is not held out
    for (rater, k, rep), g in tab.group_by(["rater_id", "k", "repeat"]):
        n = {"p": 30, "q": 25}[rater]
        sup = g.filter(pl.col("role") == "support")["image_id"]
        qry = g.filter(pl.col("role") == "query")["image_id"]
        assert sup.len() == k and qry.len() == n - k
        assert set(sup).isdisjoint(set(qry))
        assert set(sup) | set(qry) == {f"para:img{i}" for i in range(n)}
        assert g["seed"].n_unique() == 1
    assert tab.select("rater_id", "k", "repeat").unique().height == 2 * 2 * 3


def _support(tab, rater, k, rep):
    return sorted(tab.filter((pl.col("rater_id") == rater) & (pl.col("k") == k) & (pl.col("repeat") == rep)
                             & (pl.col("role") == "support"))["image_id"])


def test_fewshot_seeded():
    ratings = _ratings({"p": 60})
    people = _people("para", "p")
    kw = dict(ks=[10], repeats=4, min_query=10)
    a, _ = splits.fewshot_splits(ratings, people, seed=5, **kw)
    b, _ = splits.fewshot_splits(ratings.sample(fraction=1.0, shuffle=True, seed=2), people, seed=5, **kw)
    assert a.equals(b)  # same seed: same ids, whatever the row order of the ratings
    supports = [_support(a, "p", 10, r) for r in range(4)]
    assert len({tuple(s) for s in supports}) == 4  # each repeat draws other ids
    c, _ = splits.fewshot_splits(ratings, people, seed=6, **kw)
    assert _support(c, "p", 10, 0) != supports[0]


def test_fewshot_skips_people_with_too_few_ratings():
    ratings = _ratings({"p": 30, "q": 14})
    tab, skipped = splits.fewshot_splits(ratings, _people("para", "p", "q"), ks=[5, 20], repeats=1,
                                         min_query=10, seed=0)
    assert skipped.schema == pl.Schema(splits.SKIPPED_SCHEMA)
    got = {(r["rater_id"], r["k"]) for r in skipped.iter_rows(named=True)}
    # q: 14 < 5 + 10 and 14 < 20 + 10; p: 30 >= 20 + 10 is kept
    assert got == {("q", 5), ("q", 20)}
    assert all("14 ratings < k + 10" in r for r in skipped["reason"])
    assert set(tab["rater_id"]) == {"p"}
    assert set(tab["k"]) == {5, 20}


def test_fewshot_no_people_gives_empty_tables():
    tab, skipped = splits.fewshot_splits(_ratings({"p": 30}), _people("para"), ks=[10], repeats=2,
                                         min_query=10, seed=0)
    assert tab.height == 0 and skipped.height == 0
    assert tab.schema == pl.Schema(splits.FEWSHOT_SCHEMA)


def test_stable_seed_is_deterministic():
    assert splits.stable_seed(1, "para", "p") == splits.stable_seed(1, "para", "p")
    assert splits.stable_seed(1, "para", "p") != splits.stable_seed(1, "para", "q")
    assert 0 <= splits.stable_seed("x") < 2**31
