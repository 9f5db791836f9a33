"""The plan and its guards: who is personalized, unknown people, leakage."""

import polars as pl
import pytest

from aestimo.personalization.running import runs



def _tables():
    ratings = pl.DataFrame(
        {
            "source": ["flickr_aes"] * 6,
            "image_id": ["f:1", "f:2", "f:3", "f:4", "f:5", "f:6"],
            "rater_id": ["T1", "T1", "T1", "W9", "W9", "W9"],
            "score": [1.0, 2, 3, 4, 5, 3],
            "score_template": [1.0, 2, 3, 4, 5, 3],
        }
    )
    splits = pl.DataFrame(
        {"source": ["flickr_aes"] * 6, "image_id": ["f:1", "f:2", "f:3", "f:4", "f:5", "f:6"],
         "split": ["personal"] * 3 + ["train"] * 3}
    )
    fewshot = pl.DataFrame(
        {"source": ["flickr_aes"] * 3, "rater_id": ["T1"] * 3, "k": [1] * 3, "repeat": [0] * 3, "seed": [5] * 3,
         "image_id": ["f:1", "f:2", "f:3"], "role": ["support", "query", "query"]}
    )
    return ratings, splits, fewshot


def test_plan_takes_held_out_people():
    ratings, splits, fewshot = _tables()
    plan = runs.plan(fewshot, ratings, splits)
    assert plan.select("source", "rater_id").unique().rows() == [("flickr_aes", "T1")]


def test_unknown_person_stops_with_a_clear_error():
    ratings, splits, fewshot = _tables()
    with pytest.raises(ValueError, match="unknown person 'flickr_aes:NOBODY'"):
        runs.plan(fewshot, ratings, splits, people=["flickr_aes:NOBODY"])


def test_training_rater_is_refused_as_a_leak():
    ratings, splits, fewshot = _tables()
    with pytest.raises(ValueError, match="leak"):
        runs.plan(fewshot, ratings, splits, people=["W9"])


def test_held_out_person_whose_image_is_in_an_expert_split_is_refused():
    ratings, splits, fewshot = _tables()
    leaky = splits.with_columns(pl.when(pl.col("image_id") == "f:2").then(pl.lit("train")).otherwise(pl.col("split")).alias("split"))
    with pytest.raises(ValueError, match="leakage"):
        runs.plan(fewshot, ratings, leaky)


