"""APDS: the per-image temperature, sharpening, the kept pseudo-labels and the (β, t) grid search;
and the guards that keep test labels and people's query images out of the search and the pools."""

import math

import numpy as np
import polars as pl
import pytest
import torch

from aestimo.personalization.registry import Query, Support
from aestimo.personalization.methods.self_training import albums, rated_by_person
from aestimo.training.data import unlabeled_pool
from aestimo.training.pseudo_labels import ApdsGrid, PseudoLabels, grid_search, mean_surface, pseudo_label, sharpen, temperatures

TWO = torch.tensor([0.0, 1.0], dtype=torch.float64)  # a two-bin template: scores are P(bin 1)


def test_temperature_is_exp_of_minus_beta_times_the_unit_distance_to_the_mean():
    template = torch.arange(1.0, 11.0, dtype=torch.float64)
    tau = temperatures(torch.tensor([10.0, 5.5, 1.0], dtype=torch.float64), 5.5, 2.0, template)
    assert tau.tolist() == pytest.approx([math.exp(-1.0), 1.0, math.exp(-1.0)])  # |10 - 5.5| / 9 = 0.5
    assert temperatures(torch.tensor([3.0], dtype=torch.float64), 5.5, 0.0, template).item() == 1.0  # beta 0: no sharpening


def test_sharpen_raises_probabilities_to_one_over_tau_and_leaves_the_mean_alone():
    p = torch.tensor([[0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    out = sharpen(p, TWO, 0.5, 5.0)
    power = math.exp(5.0 * 0.3)  # score 0.8, mean 0.5: 1 / tau = exp(beta * 0.3)
    want = 0.8**power / (0.8**power + 0.2**power)
    assert out[0, 1].item() == pytest.approx(want) and out[1].tolist() == pytest.approx([0.5, 0.5])
    labels = pseudo_label(p, TWO, 0.5, 5.0, 0.9)
    assert labels.keep.tolist() == [want >= 0.9, False] and labels.score[0].item() == pytest.approx(want)


def test_grid_search_picks_the_known_best_pair():
    # two tail images whose predictions lean the right way, one middle image predicted exactly
    probs = torch.tensor([[0.3, 0.7], [0.7, 0.3], [0.5, 0.5]], dtype=torch.float64)
    truth = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    grid = ApdsGrid(betas=[0.0, 1.0, 10.0], thresholds=[0.5, 0.99], min_kept=0.5)
    surface, chosen = grid_search(probs, truth, TWO, 0.5, grid)
    assert chosen == (10.0, 0.5)  # the strongest sharpening, keeping everything
    row = surface.filter((pl.col("beta") == 10.0) & (pl.col("t") == 0.5)).row(0, named=True)
    tail = 1 - 0.7 ** math.exp(2) / (0.7 ** math.exp(2) + 0.3 ** math.exp(2))  # each tail image's error
    assert row["mae"] == pytest.approx(2 * tail / 3) and row["kept_fraction"] == 1.0 and row["chosen"]
    unsharp = surface.filter((pl.col("beta") == 0.0) & (pl.col("t") == 0.99)).row(0, named=True)
    assert unsharp["mae"] == math.inf and unsharp["kept_fraction"] == 0.0  # keeps nothing: never chosen
    strict = grid_search(probs, truth, TWO, 0.5, grid.model_copy(update={"min_kept": 0.9}))[0]
    assert strict.filter((pl.col("beta") == 10.0) & (pl.col("t") == 0.99))["mae"].item() == math.inf  # 2/3 kept < 0.9
    with pytest.raises(ValueError, match="min_kept"):
        grid_search(probs, truth, TWO, 0.5, ApdsGrid(betas=[0.0], thresholds=[0.99], min_kept=0.5))


def test_mean_surface_chooses_the_pair_best_on_average():
    a = pl.DataFrame({"beta": [0.0, 5.0], "t": [0.2, 0.2], "mae": [0.4, 0.5], "kept_fraction": [1.0, 1.0]})
    b = pl.DataFrame({"beta": [0.0, 5.0], "t": [0.2, 0.2], "mae": [0.9, 0.6], "kept_fraction": [1.0, 1.0]})
    surface, chosen = mean_surface([a, b])
    assert chosen == (5.0, 0.2) and surface.filter(pl.col("chosen"))["mae"].item() == pytest.approx(0.55)


def test_pseudo_labels_round_trip_through_their_table():
    p = pseudo_label(torch.softmax(torch.randn(4, 10, generator=torch.Generator().manual_seed(0)), 1).double(),
                     torch.arange(1.0, 11.0, dtype=torch.float64), 5.5, 5.0, 0.2)
    back = PseudoLabels.from_table(p.table(["a", "b", "c", "d"], p.score))
    assert torch.allclose(back.dist, p.dist) and torch.equal(back.keep, p.keep) and torch.allclose(back.score, p.score)


def test_an_experts_pool_holds_only_other_sources_training_images():
    splits = pl.DataFrame({
        "source": ["ava"] * 4 + ["para"] * 5 + ["aadb"] * 2,
        "image_id": ["a1", "a2", "a3", "a4", "p1", "p2", "p3", "p4", "a2", "x1", "x2"],
        "split": ["train", "train", "val", "test", "train", "train", "val", "test", "train", "personal", "personal"],
    })
    cache = ["a1", "a2", "a3", "a4", "p1", "p2", "p3", "p4", "x1", "x2"]
    rows, ids = unlabeled_pool("ava", splits, cache, None, seed=0)
    assert sorted(ids) == ["p1", "p2"]  # not para's val/test, not ava's own a2, no held-out person's image
    assert [cache[r] for r in rows.tolist()] == ids
    assert len(unlabeled_pool("ava", splits, cache, 1, seed=0)[1]) == 1
    assert unlabeled_pool("para", splits, cache, None, seed=0)[1] == ["a1"]  # a2 is one of para's own images too


def test_a_persons_pool_never_holds_an_image_they_rated():
    e = np.zeros((2, 3))
    runs = [
        (Support("s", "ann", 3, 0, 0, torch.tensor([0, 1, 2]), torch.zeros(3), e), Query("s", torch.tensor([3, 4]), np.zeros((2, 2)))),
        (Support("s", "bob", 3, 0, 1, torch.tensor([5, 6, 7]), torch.zeros(3), e), Query("s", torch.tensor([8, 9]), np.zeros((2, 2)))),
    ]
    sups, qrys = zip(*runs)
    album = albums(sups, qrys, size=100, seed=0)["s"]
    assert album.rows.tolist() == list(range(10))
    rated = rated_by_person(sups, qrys)
    assert rated[("s", "ann")].tolist() == [0, 1, 2, 3, 4]
    rows, scores = album.pool(rated[("s", "ann")], size=100, seed=0)
    assert rows.tolist() == [5, 6, 7, 8, 9] and scores.shape == (2, 5)  # ann's query images 3 and 4 are never in it
    assert len(album.pool(rated[("s", "ann")], size=2, seed=0)[0]) == 2
