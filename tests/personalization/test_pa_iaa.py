"""``pa_iaa``: the two heads, their targets and joint loss, training, and the per-person fusion."""

import numpy as np
import polars as pl
import pytest
import torch

from aestimo.bundle import TensorBundle, load_bundle, save_bundle
from aestimo.data.scales import TEMPLATES
from aestimo.evaluation import metrics
from aestimo.personalization.methods.field.field_data import TRAITS, FieldData
from aestimo.personalization.methods.field.pa_iaa import (
    PaIaa,
    PaIaaHeads,
    PaIaaOptions,
    PaIaaTrainOptions,
    Targets,
    fuse,
    generic_outputs,
    joint_loss,
    scale_traits,
    start_at_means,
    train_pa_iaa,
    trait_targets,
)
from aestimo.personalization.registry import Context, Query, Support, method_class

FIVE = torch.as_tensor(TEMPLATES["five"], dtype=torch.float32)


# --------------------------------------------------------------------------- heads


def test_heads_give_distributions_and_traits_in_range():
    heads = PaIaaHeads(16, "five", seed=0).eval()
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0] * 4 + [100.0] * 4)[:, None]
    probs, traits = heads(x)
    assert probs.shape == (8, 10) and traits.shape == (8, len(TRAITS))
    assert (probs >= 0).all() and torch.allclose(probs.sum(-1), torch.ones(8), atol=1e-6)
    assert (traits.abs() <= 1).all() and traits.abs().max() > 0.5  # large inputs saturate tanh, never past 1
    score = heads.score(probs)
    assert score.shape == (8,) and (score >= 0.5).all() and (score <= 5).all()
    torch.testing.assert_close(score, probs @ FIVE)
    # each head: Linear -> BN -> act -> Linear -> BN -> act -> Linear, widths 1024, 512
    for mlp, out in ((heads.aesthetic, 10), (heads.traits, 5)):
        kinds = [type(m).__name__ for m in mlp]
        assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
        assert [m.out_features for m in mlp if isinstance(m, torch.nn.Linear)] == [1024, 512, out]


def test_seeded_heads_are_reproducible():
    a, b, c = (PaIaaHeads(8, seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["aesthetic.0.weight"], c["aesthetic.0.weight"])


# --------------------------------------------------------------------------- loss and targets


def _batch():
    """Two images with a vote distribution, one with a mean only; traits for images 0 and 2."""
    probs = torch.tensor([[0.1] * 10, [0.0] * 9 + [1.0], [0.5, 0.5] + [0.0] * 8])
    traits = torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.0], [0.9] * 5, [-1.0, 1.0, 0.0, 0.0, 0.5]])
    y = Targets(
        rows=torch.arange(3),
        mean=torch.tensor([0.0, 0.0, 2.0]),
        dist=torch.tensor([[0.1] * 10, [1.0] + [0.0] * 9, [0.0] * 10]),
        has_dist=torch.tensor([True, True, False]),
        traits=torch.tensor([[0.0] * 5, [0.0] * 5, [0.0, 1.0, 0.0, 0.0, 0.0]]),
        has_traits=torch.tensor([True, False, True]),
    )
    return probs, traits, y


def test_joint_loss_is_aesthetic_plus_gamma_trait_with_known_terms():
    probs, traits, y = _batch()
    total, aesthetic, trait = joint_loss(probs, traits, y, FIVE, gamma=2.5)
    # image 0: identical distributions, EMD 0; image 1: all mass at the last vs the first bin,
    # |CDF difference| 1 on bins 1..9, 0 on the last: sqrt(9/10); image 2: expected score 0.75, target 2
    expected_aesthetic = (0.0 + np.sqrt(0.9) + (0.75 - 2.0) ** 2) / 3
    # images 0 and 2: squared errors 0.25 and 1 + 0.25 over 10 values
    expected_trait = (0.25 + 1.0 + 0.25) / 10
    assert float(aesthetic) == pytest.approx(expected_aesthetic, rel=1e-6)
    assert float(trait) == pytest.approx(expected_trait, rel=1e-6)
    assert float(total) == pytest.approx(expected_aesthetic + 2.5 * expected_trait, rel=1e-6)
    # no trait target in the batch: trait loss 0 (with a gradient path)
    no_traits = Targets(*(getattr(y, f) for f in ("rows", "mean", "dist", "has_dist", "traits")), torch.zeros(3, dtype=torch.bool))
    total, aesthetic, trait = joint_loss(probs, traits.requires_grad_(), no_traits, FIVE)
    assert trait.item() == 0.0 and total.item() == pytest.approx(expected_aesthetic)
    total.backward()


def test_traits_are_scaled_from_one_ten_onto_minus_one_one():
    np.testing.assert_allclose(scale_traits(np.array([1.0, 5.5, 10.0, 4.0])), [-1.0, 0.0, 1.0, -1.0 / 3])


def test_trait_targets_average_the_raters_who_rated_an_image_highly():
    # r1 rates a..e 1..5: its 80th percentile is 4.2, so only e is high; r2 rates a and e 3: its
    # percentile is 3, both high; r3 has no profile; the other source's rater is ignored.
    ratings = pl.DataFrame({
        "source": ["para"] * 8 + ["other"],
        "image_id": ["a", "b", "c", "d", "e", "a", "e", "b", "a"],
        "rater_id": ["r1"] * 5 + ["r2", "r2", "r3", "r1"],
        "score": [1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 3.0, 5.0, 5.0],
    })
    profiles = pl.DataFrame({
        "source": ["para", "para", "other"],
        "rater_id": ["r1", "r2", "r1"],
        "big5_O": [10, 1, 1], "big5_C": [1, 10, 1], "big5_E": [4, 10, 1], "big5_A": [7, 1, 1], "big5_N": [1, 4, 1],
    })
    got = trait_targets(ratings, profiles, "para")
    assert got["image_id"].to_list() == ["a", "e"] and got["n_high"].to_list() == [1, 2]
    r1, r2 = np.array([1.0, -1.0, -1 / 3, 1 / 3, -1.0]), np.array([-1.0, 1.0, 1.0, -1.0, -1 / 3])
    # TRAITS order is O, C, E, A, N
    np.testing.assert_allclose(got.select(*TRAITS).to_numpy(), np.stack([r2, (r1 + r2) / 2]), atol=1e-12)
    # a looser rule: at or above each rater's median (r1's is 3)
    half = trait_targets(ratings, profiles, "para", high_quantile=0.5)
    assert half["image_id"].to_list() == ["a", "c", "d", "e"] and half["n_high"].to_list() == [1, 1, 1, 2]


# --------------------------------------------------------------------------- training


def test_training_starts_every_image_at_the_training_means():
    _, _, y = _batch()
    heads = PaIaaHeads(4, "five", seed=0)
    start_at_means(heads, y)
    probs, traits = heads.eval()(torch.randn(6, 4))
    # mean of the two vote distributions (image 2 has none): 0.55, 0.05, ..., 0.05; mean traits of images 0 and 2
    torch.testing.assert_close(probs, torch.tensor([0.55] + [0.05] * 9).expand(6, 10), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(traits, torch.tensor([[0.0, 0.5, 0.0, 0.0, 0.0]]).expand(6, 5), atol=1e-6, rtol=1e-5)


def synthetic_field(n=200, d=16, raters=20, seed=0) -> FieldData:
    """PARA-like images whose score and liked-by-open-people direction are linear in the features.

    Rater j's openness is 1 + j % 10; they add ``(O - 5.5) / 4.5 * x @ u`` to the image's score, so
    open raters rate highly the images high along ``u``. Every fifth image has no vote distribution.
    """
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, d))
    v, u = g.normal(size=d), g.normal(size=d)
    s = np.clip(3.0 + 0.6 * x @ v / np.linalg.norm(v), 1.0, 5.0)
    bins = TEMPLATES["five"]
    dist = np.exp(-((bins[None, :] - s[:, None]) ** 2) / (2 * 0.5**2))
    dist /= dist.sum(axis=1, keepdims=True)
    ids = [f"para:{i}" for i in range(n)]
    split = ["train" if i < 0.8 * n else "val" for i in range(n)]
    generic = pl.DataFrame({
        "source": ["para"] * n, "image_id": ids, "mean": s, "mean_template": s,
        "dist": [None if i % 5 == 0 else list(dist[i]) for i in range(n)], "split": split,
    })
    openness = 1 + np.arange(raters) % 10
    like = x @ u / np.linalg.norm(u)
    score = s[None, :] + scale_traits(openness)[:, None] * like[None, :] + 0.1 * g.normal(size=(raters, n))
    ratings = pl.DataFrame({
        "source": "para", "image_id": ids * raters, "rater_id": np.repeat([f"r{j}" for j in range(raters)], n),
        "score": score.reshape(-1), "score_template": score.reshape(-1), "split": split * raters,
    })
    profiles = pl.DataFrame({
        "source": "para", "rater_id": [f"r{j}" for j in range(raters)], "big5_O": openness,
        **{t: g.integers(1, 11, size=raters) for t in TRAITS[1:]},
    })
    return FieldData(ids, torch.as_tensor(x, dtype=torch.float32), ratings, generic, profiles, seed=0)


FAST = PaIaaTrainOptions(steps=100, batch_size=32, lr=1e-3, eval_every=10)


pytestmark = pytest.mark.usefixtures("one_thread")  # small networks: one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def trained():
    data = synthetic_field()
    return data, train_pa_iaa(data, FAST)


def test_training_reduces_the_validation_loss_and_learns_both_tasks(trained):
    data, bundle = trained
    m = bundle.meta
    assert m["n_train"] == 160 and m["n_val"] == 40 and m["source"] == "para" and m["template"] == "five"
    assert m["embed_dim"] == 16 and m["traits"] == list(TRAITS)
    assert m["val_loss"] < 0.5 * m["init_val_loss"]
    assert m["val_loss"] == pytest.approx(m["val_aesthetic"] + FAST.gamma * m["val_trait"], rel=1e-5)
    heads = PaIaaHeads.from_bundle(bundle)
    val = data.generic_scores.filter(pl.col("split") == "val")
    with torch.no_grad():
        probs, traits = heads(data.features[data.rows(val["image_id"].to_list())])
    assert metrics.srocc(val["mean_template"].to_numpy(), heads.score(probs).numpy()) > 0.9
    targets = trait_targets(data.ratings, data.profiles, "para")
    o = dict(zip(targets["image_id"], targets["big5_O"]))
    has = [i in o for i in val["image_id"]]
    assert sum(has) >= 20  # images nobody rated highly have no trait target
    assert metrics.srocc([o[i] for i in val["image_id"] if i in o], traits[has, 0].numpy()) > 0.6


def test_training_is_deterministic_and_the_bundle_round_trips(trained, tmp_path):
    data, bundle = trained
    again = train_pa_iaa(data, FAST)
    assert all(torch.equal(bundle[k], again[k]) for k in bundle)
    save_bundle(bundle, tmp_path / "pa_iaa.safetensors")
    loaded = load_bundle(tmp_path / "pa_iaa.safetensors")
    assert loaded.meta["val_loss"] == bundle.meta["val_loss"]
    x = data.features[:5]
    with torch.no_grad():
        for a, b in zip(PaIaaHeads.from_bundle(bundle)(x), PaIaaHeads.from_bundle(loaded)(x)):
            torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- fusion


def _ctx(n=120, d=16, seed=0):
    """A Context with features and untrained (seeded) heads as the artifact."""
    heads = PaIaaHeads(d, "five", seed=seed).eval()
    features = torch.randn(n, d, generator=torch.Generator().manual_seed(seed + 1))
    bundle = TensorBundle({k: v.clone() for k, v in heads.state_dict().items()}, heads.meta())
    return Context(images=None, theta0=None, task_vectors=None, features=features, artifacts={"pa_iaa": bundle})


def _person(ctx, a, w, b, k=10, source="flickr_aes"):
    g, t = (v.double().numpy() for v in generic_outputs(ctx))
    y = a * g + t @ w + b
    rows = torch.randperm(len(y), generator=torch.Generator().manual_seed(5))
    sup, qry = rows[:k], rows[k:]
    support = Support(source, "p", k, 0, 0, sup, torch.as_tensor(y[sup.numpy()], dtype=torch.float32), np.zeros((1, k)))
    return support, Query(source, qry, np.zeros((1, len(qry)))), y[qry.numpy()], g[qry.numpy()]


def test_pa_iaa_is_a_registered_light_method():
    assert method_class("pa_iaa") is PaIaa and not PaIaa.heavy and not PaIaa.ceiling


def test_a_person_exactly_generic_plus_traits_is_recovered_without_a_pull():
    ctx = _ctx()
    w_true = np.array([2.0, -1.0, 0.5, 0.0, 3.0])
    support, query, y_query, _ = _person(ctx, 2.0, w_true, 1.0)  # e.g. a 1..10 person: twice the generic score
    method = PaIaa(PaIaaOptions(l2=0.0, l2_generic=0.0))
    state = method.fit(support, ctx)
    assert set(state) == {"a", "w", "b"} and state["w"].shape == (5,)
    assert float(state["a"][0]) == pytest.approx(2.0, abs=1e-4)
    np.testing.assert_allclose(state["w"].numpy(), w_true, atol=1e-4)
    assert float(state["b"][0]) == pytest.approx(1.0, abs=1e-4)
    pred = method.predict(state, query, ctx)
    assert metrics.srocc(y_query, pred) > 0.9999
    np.testing.assert_allclose(pred, y_query, atol=1e-4)


def test_the_pulls_shrink_the_traits_toward_the_generic_ranking():
    ctx = _ctx()
    support, query, y_query, g_query = _person(ctx, 1.0, np.array([4.0, -4.0, 2.0, 2.0, 3.0]), 0.0)
    fitted = {}
    for l2 in (0.0, 10.0, 100.0, 1e12):
        method = PaIaa(PaIaaOptions(l2=l2, l2_generic=10.0))
        state = method.fit(support, ctx)
        fitted[l2] = (np.linalg.norm(state["w"].numpy()), method.predict(state, query, ctx))
    norms = [fitted[l2][0] for l2 in (0.0, 10.0, 100.0, 1e12)]
    assert norms[0] > norms[1] > norms[2] > norms[3] and norms[3] < 1e-9
    assert metrics.srocc(g_query, fitted[1e12][1]) == pytest.approx(1.0)  # all pulled: the generic ranking
    assert metrics.srocc(y_query, fitted[0.0][1]) > metrics.srocc(y_query, fitted[1e12][1])


def test_the_generic_weight_never_flips_at_k_10_with_the_default_pull():
    """At l2_generic = 10 and k = 10 the generic weight stays positive even for a person who ranks
    exactly against the generic score (standardised correlation -1 weighs as 10 images, the pull as 10)."""
    g = np.arange(10.0)
    t = np.zeros((10, 5))
    a, w, b = fuse(g, t, 10.0 - g, l2=100.0, l2_generic=10.0)
    assert a == pytest.approx(0.0, abs=1e-12) and np.all(w == 0)
    a, _, _ = fuse(g, t, 10.0 - g + np.r_[1.0, [0.0] * 9], l2=100.0, l2_generic=10.0)
    assert a > 0
    a, _, b = fuse(g, t, 3.0 * g + 1.0, l2=100.0, l2_generic=0.0)  # no pull: the affine fit
    assert (a, b) == pytest.approx((3.0, 1.0))
    # a trait constant on the support gets weight 0; a varying one its exact weight
    t = np.column_stack([np.sin(g), np.full(10, 0.3), np.zeros((10, 3))])
    a, w, b = fuse(g, t, g + 2.0 * t[:, 0] + t[:, 1], l2=0.0, l2_generic=0.0)
    np.testing.assert_allclose([a, *w, b], [1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.3], atol=1e-9)
