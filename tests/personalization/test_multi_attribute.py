"""Multi-attribute heads on cached features: labels, training (test rows unused), metrics, the personal ridge."""

import numpy as np
import polars as pl
import pytest
import torch

from aestimo.bundle import TensorBundle, load_bundle, save_bundle
from aestimo.evaluation import metrics
from aestimo.models.scorer import MultiAttributeScorer
from aestimo.personalization import method_class
from aestimo.personalization.methods.field.field_data import FieldData
from aestimo.personalization.methods.field.multi_attribute import (
    OVERALL,
    SHARED_KEY,
    AttributeHeads,
    MultiAttribute,
    MultiAttributeOptions,
    MultiAttributeTrainOptions,
    attribute_metrics,
    attribute_scores,
    attribute_spec,
    heads_loss,
    split_labels,
    train_multi_attribute,
)
from aestimo.personalization.registry import Context, Query, Support

D = 8
FAST = {"hidden": 32, "steps": 300, "batch_size": 64, "lr": (1e-2, 1e-4), "eval_every": 50, "dropout": 0.1}


def _world(seed=0, n_para=240, n_spaq=160, n_ava=80):
    """PARA-like images label quality and color (1..5, quality missing on every 4th image), SPAQ-like
    ones brightness (0..100), AVA-like ones only their mean; every label is a linear function of the
    features. Splits: 60 % train, 20 % val, 20 % test per source."""
    g = np.random.default_rng(seed)
    n = n_para + n_spaq + n_ava
    feats = g.normal(size=(n, D))
    w = g.normal(size=(4, D))
    src = ["para"] * n_para + ["spaq"] * n_spaq + ["ava"] * n_ava
    ids = [f"{s}:{i}" for i, s in enumerate(src)]
    split = []
    for m in (n_para, n_spaq, n_ava):
        split += (["train"] * int(0.6 * m) + ["val"] * int(0.2 * m) + ["test"] * (m - int(0.6 * m) - int(0.2 * m)))
    lin = feats @ w.T  # (n, 4): quality, color, brightness, mean
    is_para, is_spaq = np.array([s == "para" for s in src]), np.array([s == "spaq" for s in src])
    quality = np.where(is_para & (np.arange(n) % 4 != 0), 3 + 0.4 * lin[:, 0], np.nan)
    color = np.where(is_para, 3 + 0.4 * lin[:, 1], np.nan)
    brightness = np.where(is_spaq, 50 + 8 * lin[:, 2], np.nan)
    mean = np.where(is_spaq, 50 + 8 * lin[:, 3], 5 + 0.5 * lin[:, 3])
    scores = pl.DataFrame({
        "source": src, "image_id": ids, "mean": mean, "mean_template": mean, "dist": [None] * n,
        "attr_quality": quality, "attr_color": color, "attr_brightness": brightness, "split": split,
    }).with_columns(pl.col("^attr_.*$").fill_nan(None))
    data = FieldData(ids, torch.as_tensor(feats, dtype=torch.float32), pl.DataFrame(), scores, pl.DataFrame(), seed=seed)
    return data, lin


def test_spec_has_one_head_per_labelled_attribute_and_aesthetics_on_the_attribute_sources():
    data, _ = _world()
    spec = attribute_spec(data, MultiAttributeTrainOptions())
    assert spec.attributes == ["brightness", "color", "quality", OVERALL]
    assert set(spec.ranges[OVERALL]) == {"para", "spaq"}  # ava labels no attribute: not in the overall head
    train = data.generic_scores.filter((pl.col("split") == "train") & (pl.col("source") == "para"))
    assert spec.ranges["quality"]["para"] == (train["attr_quality"].min(), train["attr_quality"].max())
    # targets: the train range mapped onto 1..10, unlabelled images NaN
    labels = split_labels(data, spec, "train")
    q = labels.targets[:, spec.attributes.index("quality")]
    assert float(np.nanmin(q.numpy())) == pytest.approx(1.0) and float(np.nanmax(q.numpy())) == pytest.approx(10.0)
    assert int(torch.isnan(q).sum()) == 36 + 96  # every 4th of PARA's 144 train images, and SPAQ's 96
    chosen = attribute_spec(data, MultiAttributeTrainOptions(attributes=("color",)))
    assert chosen.attributes == ["color"]
    with pytest.raises(KeyError, match="attr_nope"):
        attribute_spec(data, MultiAttributeTrainOptions(attributes=("nope",)))


def test_unlabelled_images_are_masked_out_of_a_heads_loss():
    heads = AttributeHeads(D, ["a", "b"], hidden=16, dropout=0.0, seed=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, D, generator=g)
    t = torch.tensor([[2.0, float("nan")], [5.0, float("nan")], [8.0, float("nan")],
                      [float("nan"), float("nan")], [float("nan"), float("nan")], [float("nan"), float("nan")]])
    priors = [torch.ones(10), torch.ones(10)]
    base = heads_loss(heads, x, t, priors, 0.001)
    x2 = x.clone()
    x2[3:] = 100.0  # images without any label
    assert float(heads_loss(heads, x2, t, priors, 0.001).detach()) == pytest.approx(float(base.detach()))
    base.backward()
    assert all(p.grad is None for p in heads.heads["b"].parameters())  # no label for b: b gets no gradient


def test_training_learns_every_attribute_and_never_reads_test_rows():
    data, _ = _world()
    options = MultiAttributeTrainOptions(**FAST)
    bundle = train_multi_attribute(data, options)
    table = attribute_metrics(bundle, data)
    assert set(zip(table["attribute"], table["source"])) == {
        ("brightness", "spaq"), ("color", "para"), ("quality", "para"), (OVERALL, "para"), (OVERALL, "spaq")}
    assert (table["srocc"] > 0.85).all(), table
    assert bundle.meta["best_step"] > 0 and bundle.meta["val_srocc"] > 0.85

    # scramble the test split's labels and features: the same bundle, bit for bit
    test = (data.generic_scores["split"] == "test").to_numpy()
    scrambled = data.generic_scores.with_columns(
        pl.when(pl.Series(test)).then(pl.col(c).reverse()).otherwise(pl.col(c)).alias(c)
        for c in ("mean", "attr_quality", "attr_color", "attr_brightness"))
    feats = data.features.clone()
    feats[torch.as_tensor(test)] = torch.randn(int(test.sum()), D, generator=torch.Generator().manual_seed(9))
    other = train_multi_attribute(FieldData(data.image_ids, feats, data.ratings, scrambled, data.profiles, data.seed), options)
    assert bundle.tensors.keys() == other.tensors.keys()
    assert all(torch.equal(bundle[k], other[k]) for k in bundle.tensors)


def test_bundle_round_trips_through_safetensors_and_loads_into_the_multi_attribute_scorer(tmp_path):
    data, _ = _world()
    bundle = train_multi_attribute(data, MultiAttributeTrainOptions(**{**FAST, "steps": 20}))
    save_bundle(bundle, tmp_path / "ma.safetensors")
    loaded = load_bundle(tmp_path / "ma.safetensors")
    heads = AttributeHeads.from_bundle(loaded)
    torch.testing.assert_close(attribute_scores(heads, data.features), attribute_scores(AttributeHeads.from_bundle(bundle), data.features))
    scorer = MultiAttributeScorer(torch.nn.Identity(), loaded.meta["attributes"], embed_dim=D, hidden=32, dropout=0.1,
                                  channels_last=False).eval()
    missing, unexpected = scorer.load_state_dict(loaded.tensors, strict=False)
    assert missing == [] and unexpected == []
    by_scorer = scorer.score(data.features, "ten")
    torch.testing.assert_close(torch.stack([by_scorer[a] for a in heads.attributes], 1), attribute_scores(heads, data.features))


def _ctx(features, bundle):
    return Context(images=None, theta0=None, task_vectors=None, features=torch.as_tensor(features, dtype=torch.float32),
                   artifacts={"multi_attribute": bundle})


def test_a_person_linear_in_two_heads_is_recovered_and_scores_are_computed_once():
    assert method_class("multi_attribute") is MultiAttribute
    g = torch.Generator().manual_seed(1)
    features = torch.randn(200, D, generator=g)
    heads = AttributeHeads(D, ["a", "b", "c"], hidden=16, seed=3)
    bundle = TensorBundle(dict(heads.state_dict()), heads.meta())
    ctx = _ctx(features, bundle)
    s = attribute_scores(heads, features).double().numpy()
    y = 3.0 + 2.0 * s[:, 0] - 1.5 * s[:, 2]
    k = 15
    support = Support("para", "P", k, 0, 0, torch.arange(k), torch.as_tensor(y[:k], dtype=torch.float32), np.zeros((2, k)))
    query = Query("para", torch.arange(k, 200), np.zeros((2, 200 - k)))
    method = MultiAttribute()
    method.prepare([support], [query], ctx)
    assert bool(ctx.shared[SHARED_KEY]["done"].all())
    state = method.fit(support, ctx)
    assert state["w"].shape == (3,) and state["b"].shape == (1,)
    pred = method.predict(state, query, ctx)
    assert pred.shape == (200 - k,)
    assert metrics.srocc(y[k:], pred) > 0.99
    np.testing.assert_allclose(pred, y[k:], atol=0.05)
    # only the two heads: the same answer
    two = MultiAttribute(MultiAttributeOptions(attributes=("a", "c")))
    assert metrics.srocc(y[k:], two.predict(two.fit(support, ctx), query, ctx)) > 0.99

    # cached by row: changing the features afterwards changes nothing already scored
    ctx.features[:] = 0.0
    np.testing.assert_array_equal(method.predict(state, query, ctx), pred)


def test_rows_not_prepared_are_scored_on_demand_and_a_missing_bundle_says_what_to_do():
    g = torch.Generator().manual_seed(2)
    features = torch.randn(30, D, generator=g)
    heads = AttributeHeads(D, ["a", "b"], hidden=16, seed=0)
    ctx = _ctx(features, TensorBundle(dict(heads.state_dict()), heads.meta()))
    y = torch.arange(10, dtype=torch.float32)
    support = Support("para", "P", 10, 0, 0, torch.arange(10), y, np.zeros((2, 10)))
    state = MultiAttribute().fit(support, ctx)  # no prepare
    assert int(ctx.shared[SHARED_KEY]["done"].sum()) == 10
    out = MultiAttribute().predict(state, Query("para", torch.tensor([20, 21]), np.zeros((2, 2))), ctx)
    assert out.shape == (2,) and np.isfinite(out).all()
    assert int(ctx.shared[SHARED_KEY]["done"].sum()) == 12
    with pytest.raises(ValueError, match="train_multi_attribute"):
        MultiAttribute().fit(support, Context(None, None, None, features=features))
