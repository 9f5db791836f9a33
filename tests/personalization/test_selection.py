"""Instant's L2 pull is chosen on validation people: who they are, and the choice itself."""

import numpy as np
import polars as pl
import torch

from aestimo.personalization.methods.instant import Instant, InstantOptions
from aestimo.personalization.running.runs import RunData
from aestimo.personalization.running.selection import choose, validation_people, validation_splits
from tests.personalization.test_instant import person_runs, toy_context, toy_world


def _tables():
    """Four AADB-like raters and a FLICKR-like training worker; images a*/b* personal, f* in an expert split."""
    rows = []
    for rater, n, prefix in [("T1", 30, "a"), ("V1", 25, "a"), ("V2", 22, "b"), ("FEW", 12, "b"), ("W", 30, "f")]:
        rows += [("aadb" if prefix != "f" else "flickr_aes", rater, f"{prefix}{i}") for i in range(n)]
    ratings = pl.DataFrame(rows, schema=["source", "rater_id", "image_id"], orient="row").with_columns(pl.lit(3.0).alias("score"))
    images = ratings["image_id"].unique()
    splits = pl.DataFrame({"image_id": images, "split": ["train" if i.startswith("f") else "personal" for i in images]})
    test_people = pl.DataFrame({"source": ["aadb"], "rater_id": ["T1"]})
    return ratings, test_people, splits


def test_validation_people_are_neither_test_people_nor_seen_by_an_expert():
    ratings, test_people, splits = _tables()
    val = validation_people(ratings, test_people, splits, min_ratings=20)
    assert val["rater_id"].to_list() == ["V1", "V2"]  # not T1 (test), W (expert data), FEW (too few)
    few = validation_splits(ratings, test_people, splits, ks=[10], repeats=2, min_query=10, seed=0)
    assert set(few["rater_id"]) == {"V1", "V2"} and set(few["repeat"]) == {0, 1}
    assert few.filter(pl.col("role") == "support").group_by("rater_id", "repeat").len()["len"].unique().to_list() == [10]


def test_choose_picks_the_value_that_ranks_validation_people_best():
    merged = toy_world()
    x = torch.randn(150, 4, generator=torch.Generator().manual_seed(11))
    ctx = toy_context(merged, x)
    data = []
    for target in (0, 2, 3):
        support, query, y = person_runs(merged, x, target, k=60, seed=target)
        data.append(RunData(support, query, y))
    # a pull so strong that λ stays at the uniform start (the zero-shot mix) against one that lets it learn
    best, table = choose([6.0, 1e6], lambda v: Instant(InstantOptions(l2=v, init="uniform")), data, ctx)
    assert best == 6.0
    assert table.filter(pl.col("chosen"))["value"].to_list() == [6.0]
    assert table["people"].to_list() == [3, 3]
    learned, held = table.sort("value")["srocc_mean"].to_list()
    assert learned > held + 0.05


def test_a_tie_goes_to_the_stronger_pull():
    merged = toy_world()
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(12))
    ctx = toy_context(merged, x)
    support, query, y = person_runs(merged, x, 1, k=20, seed=0)
    flat = RunData(support.__class__(**{**support.__dict__, "y": torch.full((20,), 3.0)}), query, y)  # nothing to rank
    best, table = choose([1e-2, 1.0], lambda v: Instant(InstantOptions(l2=v, init="uniform")), [flat], ctx)
    assert best == 1.0 and np.allclose(table["srocc_mean"].to_numpy(), table["srocc_mean"][0])


def test_chosen_settings_fill_only_options_the_parameters_leave_unset():
    from aestimo import config
    from aestimo.personalization.running.selection import chosen_settings

    table = pl.DataFrame({"method": ["instant", "instant", "output_mix"], "option": ["l2"] * 3, "value": [0.1, 1.0, 30.0],
                          "k": [10] * 3, "people": [4] * 3, "srocc_mean": [0.4, 0.3, 0.2], "chosen": [True, False, True]})
    chosen = chosen_settings(table)
    assert chosen == {"instant": {"l2": 0.1}, "output_mix": {"l2": 30.0}}
    p = config.parse("personalize", {"methods": {
        "instant": {"method": "instant"}, "own": {"method": "instant", "l2": 5.0}, "mix": {"method": "output_mix"}}})
    built = {m.name: m.method.options for m in p.configured_methods([], chosen)}
    assert built["instant"].l2 == 0.1 and built["own"].l2 == 5.0 and built["mix"].l2 == 30.0
