"""``aesmamba_p``: the prompt text, the cross-modal fusion, training with part dropout, the method."""

from itertools import combinations

import numpy as np
import polars as pl
import pytest
import torch
from pydantic import ValidationError

from aestimo.evaluation import metrics
from aestimo.personalization import method_class
from aestimo.personalization.methods.field.field_data import FieldData
from aestimo.personalization.methods.field.prompts import (
    ARTIFACT,
    PARTS,
    AesMambaP,
    AesMambaPOptions,
    PromptFusion,
    PromptTrainOptions,
    model_from_bundle,
    prompt_parts,
    prompt_text,
    prompt_tokens,
    retemplate,
    state_sentences,
    train_prompt_model,
)
from aestimo.personalization.registry import Context, Query, Support

PROFILE = {"source": "para", "rater_id": "A1", "age": "18-21", "gender": "female", "education": "University",
           "art_experience": "proficient", "photo_experience": "competent",
           "big5_E": 3, "big5_A": 5, "big5_N": 8, "big5_O": 6, "big5_C": 1}
ART = "My artistic experience is proficient."
PHOTO = "My photographic experience is competent."
BIG5 = ("In the Big-Five personality traits test, my scores are as follows: openness score is 6, conscientiousness "
        "score is 1, extroversion score is 3, agreeableness score is 5, and neuroticism score is 8.")


# --------------------------------------------------------------------------- the prompt text


@pytest.mark.parametrize("contents", [c for n in range(4) for c in combinations(PARTS, n)])
def test_the_prompt_is_the_included_templates_joined_by_single_spaces(contents):
    expected = " ".join(s for p, s in zip(PARTS, (ART, PHOTO, BIG5)) if p in contents)
    assert prompt_text(PROFILE, contents) == expected
    assert prompt_parts(PROFILE, contents) == [s for p, s in zip(PARTS, (ART, PHOTO, BIG5)) if p in contents]


def test_the_full_prompt_the_order_the_parts_are_written_in_and_bad_profiles():
    assert prompt_text(PROFILE) == f"{ART} {PHOTO} {BIG5}"
    assert prompt_text(PROFILE, ["big5", "art"]) == f"{ART} {BIG5}"  # always art, photo, big5
    assert prompt_text(PROFILE | {"big5_O": 6.0}) == prompt_text(PROFILE)  # integral floats (a null-able column) as ints
    with pytest.raises(ValueError, match="big5_N"):
        prompt_text(PROFILE | {"big5_N": None})
    with pytest.raises(ValueError):
        prompt_text(PROFILE, ["art", "art"])
    assert AesMambaPOptions(contents=["big5", "photo"]).contents == ("photo", "big5")
    assert AesMambaPOptions().contents == PARTS and AesMambaPOptions(contents=[]).contents == ()
    with pytest.raises(ValidationError):
        AesMambaPOptions(contents=["age"])


# --------------------------------------------------------------------------- the fusion


def _fusion(seed=0, **kw):
    torch.manual_seed(seed)
    return PromptFusion(image_dim=12, text_dim=384, width=16, heads=2, hidden=8, dropout=0.0, **kw).eval()


def test_with_the_attention_and_ffn_outputs_zeroed_the_fused_feature_is_the_projected_image():
    model = _fusion()
    g = torch.Generator().manual_seed(1)
    image, tokens = torch.randn(5, 12, generator=g), torch.randn(5, 7, 384, generator=g)
    mask = torch.ones(5, 7, dtype=torch.bool)
    other = torch.randn(5, 7, 384, generator=g)
    with torch.no_grad():
        assert (model.fuse(image, tokens, mask) - model.fuse(image, other, mask)).abs().max() > 1e-3  # reads the prompt
        for layer in (model.attn.out_proj, model.ffn[-1]):
            layer.weight.zero_()
            layer.bias.zero_()
        f = model.image_in(image)
        torch.testing.assert_close(model.fuse(image, tokens, mask), f, rtol=0, atol=0)
        torch.testing.assert_close(model.fuse(image, other, mask), f, rtol=0, atol=0)


def test_no_prompt_attends_to_the_null_token_and_masking_a_part_is_leaving_it_out():
    model = _fusion()
    g = torch.Generator().manual_seed(2)
    image, tokens = torch.randn(4, 12, generator=g), torch.randn(1, 9, 384, generator=g)
    idx = torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        empty = model.fuse(image, torch.zeros(1, 0, 384), torch.zeros(4, 0, dtype=torch.bool), idx)
        masked_all = model.fuse(image, tokens, torch.zeros(4, 9, dtype=torch.bool), idx)
        torch.testing.assert_close(empty, masked_all, rtol=1e-5, atol=1e-6)
        assert torch.isfinite(model(image, torch.zeros(1, 0, 384), torch.zeros(4, 0, dtype=torch.bool), idx)).all()
        keep = torch.zeros(4, 9, dtype=torch.bool)
        keep[:, 3:] = True  # the first "part" (3 tokens) left out
        torch.testing.assert_close(model.fuse(image, tokens, keep, idx),
                                   model.fuse(image, tokens[:, 3:], keep[:, 3:], idx), rtol=1e-5, atol=1e-6)


def test_images_grouped_by_prompt_give_what_each_image_gives_alone():
    """Images reading the same prompt share its keys and values; each still reads its own parts."""
    model = _fusion()
    g = torch.Generator().manual_seed(3)
    image, tokens = torch.randn(7, 12, generator=g), torch.randn(3, 6, 384, generator=g)
    index = torch.tensor([2, 0, 2, 2, 1, 0, 2])
    mask = torch.rand(7, 6, generator=g) > 0.4
    with torch.no_grad():
        grouped = model.fuse(image, tokens, mask, index)
        alone = torch.cat([model.fuse(image[i : i + 1], tokens[index[i : i + 1]], mask[i : i + 1]) for i in range(7)])
        torch.testing.assert_close(grouped, alone, rtol=1e-5, atol=1e-5)
        same = mask.clone()
        same[:] = mask[0]  # every image reads the same parts: the key padding mask alone
        torch.testing.assert_close(model.fuse(image, tokens, same, index), model.fuse(image, tokens[index], same),
                                   rtol=1e-5, atol=1e-5)


def test_scores_lie_on_the_template_and_retemplate_maps_bin_to_bin():
    model = _fusion()
    s = model(torch.randn(6, 12), torch.randn(6, 4, 384), torch.ones(6, 4, dtype=torch.bool))
    assert s.shape == (6,) and bool(((s >= 0.5) & (s <= 5.0)).all())
    np.testing.assert_allclose(retemplate(np.array([0.5, 2.75, 5.0]), "five", "ten"), [1.0, 5.5, 10.0])
    scalar = _fusion(head="scalar", center=3.0)
    with torch.no_grad():
        scalar.head.fc2.weight.zero_()
        scalar.head.fc2.bias.zero_()
    torch.testing.assert_close(scalar(torch.randn(2, 12), torch.randn(2, 4, 384), torch.ones(2, 4, dtype=torch.bool)),
                               torch.full((2,), 3.0))


# --------------------------------------------------------------------------- training on a synthetic field

LEVELS = ["beginner", "competent", "proficient", "expert"]


def synthetic_field(n_raters=16, n_images=120, dim=8, seed=0):
    """Each rater's score is 3 + 0.8·x0 if their openness is high (9), 3 − 0.8·x0 if low (2): no image
    is better for everyone, so without the prompt the best guess is 3; images 0..89 train, the rest val."""
    g = np.random.default_rng(seed)
    x = torch.as_tensor(g.normal(size=(n_images, dim)), dtype=torch.float32)
    ids = [f"para:{i}" for i in range(n_images)]
    profiles, ratings = [], []
    for r in range(n_raters):
        high = r % 2 == 0
        profiles.append({"source": "para", "rater_id": f"R{r}", "age": "22-25", "gender": "male", "education": "University",
                         "art_experience": LEVELS[g.integers(4)], "photo_experience": LEVELS[g.integers(4)],
                         "big5_E": int(g.integers(1, 11)), "big5_A": int(g.integers(1, 11)), "big5_N": int(g.integers(1, 11)),
                         "big5_O": 9 if high else 2, "big5_C": int(g.integers(1, 11))})
        y = np.clip(3 + (0.8 if high else -0.8) * x[:, 0].numpy() + 0.1 * g.normal(size=n_images), 1, 5)
        ratings += [{"source": "para", "image_id": ids[i], "rater_id": f"R{r}", "score": float(y[i]),
                     "score_template": float(y[i]), "split": "train" if i < 90 else "val"} for i in range(n_images)]
    return FieldData(ids, x, pl.DataFrame(ratings), pl.DataFrame(), pl.DataFrame(profiles), seed=seed)


TINY = PromptTrainOptions(width=32, heads=2, hidden=32, dropout=0.0, image_dropout=0.0, epochs=40, batch_size=96,
                          rater_group=12, lr=3e-3)


pytestmark = pytest.mark.usefixtures("one_thread")  # small networks: one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def field():
    return synthetic_field()


@pytest.fixture(scope="module")
def trained(field):
    return train_prompt_model(field, TINY)


def test_training_learns_to_read_the_prompt(field, trained):
    """The trait × image interaction is learnable only through the prompt: with it the validation
    loss falls far below the no-prompt loss (~0.8² · var(x0) ≈ 0.6, the best a prompt-blind model can do)."""
    by = trained.meta["val_loss_by_contents"]
    assert set(by) == {"none", "art", "photo", "big5", "art+photo", "art+big5", "photo+big5", "art+photo+big5"}
    assert by["none"] > 0.4
    # a prompt-blind model cannot go below ~1.0x "none"; how far below a reading one goes moves with the CPU's
    # rounding: 0.27 of it on one thread and 0.39 on two on 2026-12-07's machine, 0.15-0.38 over field seeds 0-3
    assert by["art+photo+big5"] < 0.5 * by["none"] and by["big5"] < 0.5 * by["none"]
    assert trained.meta["val_loss"] == pytest.approx(by["art+photo+big5"], rel=1e-4)
    assert trained.meta["config"]["image_dim"] == 8 and trained.meta["template"] == "five"
    model = model_from_bundle(trained)  # the bundle rebuilds the module
    assert isinstance(model, PromptFusion) and not model.training


def test_training_is_seeded(field, trained):
    again = train_prompt_model(field, TINY.model_copy(update={"epochs": 2}))
    twice = train_prompt_model(field, TINY.model_copy(update={"epochs": 2}))
    for k in again.tensors:
        assert torch.equal(again[k], twice[k])
    other = train_prompt_model(field, TINY.model_copy(update={"epochs": 2, "seed": 5}))
    assert not torch.equal(again["text_in.weight"], other["text_in.weight"])


# --------------------------------------------------------------------------- the method


def _ctx(field, trained):
    return Context(images=None, theta0=None, task_vectors=None, experts=["a"], features=field.features,
                   artifacts={ARTIFACT: trained},
                   profiles={("para", p["rater_id"]): p for p in field.profiles.iter_rows(named=True)})


def _person(field, rater, k=20, seed=0):
    """Support: k of the training images; query: the 30 val images (unseen in training)."""
    mine = field.ratings.filter(pl.col("rater_id") == rater)
    score = dict(zip(mine["image_id"], mine["score_template"]))
    y = torch.tensor([score[i] for i in field.image_ids], dtype=torch.float32)  # rows in cache order
    sup, qry = torch.randperm(90, generator=torch.Generator().manual_seed(seed))[:k], torch.arange(90, 120)
    return Support("para", rater, k, 0, seed, sup, y[sup], np.zeros((1, k))), Query("para", qry, np.zeros((1, len(qry)))), y[qry]


def test_zero_shot_reads_the_persons_prompt(field, trained):
    """A person of high openness ranks images by +x0, one of low openness by −x0; without the prompt
    both get the same scores."""
    assert method_class("aesmamba_p") is AesMambaP and AesMambaP.needs_profile and AesMambaP.heavy
    ctx = _ctx(field, trained)
    m = AesMambaP()
    m.prepare([_person(field, r)[0] for r in ("R0", "R1")], [], ctx)
    x0 = field.features[:, 0].numpy()
    for rater, sign in (("R0", 1), ("R1", -1)):
        support, query, _ = _person(field, rater)
        state = m.fit(support, ctx)
        assert set(state) == {"prompt"} and state_sentences(state) == prompt_parts(ctx.profiles[("para", rater)])
        pred = m.predict(state, query, ctx)
        assert pred.shape == (len(query.rows),) and pred.dtype == np.float64
        assert sign * metrics.srocc(x0[query.rows.numpy()], pred) > 0.8
    none = AesMambaP(AesMambaPOptions(contents=()))
    s0, s1 = none.fit(_person(field, "R0")[0], ctx), none.fit(_person(field, "R1")[0], ctx)
    assert s0["prompt"].numel() == 0 and state_sentences(s0) == []
    q = _person(field, "R0")[1]
    np.testing.assert_allclose(none.predict(s0, q, ctx), none.predict(s1, q, ctx))


def test_fine_tuning_fits_the_head_to_the_support_seeded(field, trained):
    """With no prompt the generic model cannot know which way the person ranks (zero-shot SROCC ~0);
    k = 20 support images teach it to the head's last layer."""
    ctx = _ctx(field, trained)
    blind = AesMambaP(AesMambaPOptions(contents=()))
    tuned = AesMambaP(AesMambaPOptions(contents=(), fine_tune_steps=100, fine_tune_lr=3e-2))
    zero_shot = []
    for rater in ("R0", "R1"):
        support, query, y_query = _person(field, rater)
        zero_shot.append(metrics.srocc(y_query.numpy(), blind.predict(blind.fit(support, ctx), query, ctx)))
        state = tuned.fit(support, ctx)
        assert set(state) == {"prompt", "head.fc2.weight", "head.fc2.bias"}
        assert metrics.srocc(y_query.numpy(), tuned.predict(state, query, ctx)) > 0.6  # 0.67 at worst on 2026-12-07's machine (0.75 held where it was written)
        again = tuned.fit(support, ctx)
        assert all(torch.equal(state[k], again[k]) for k in state)
    # blind, the model scores both people alike, so it serves at most one of two opposite people
    # (how much it leans to one is the generic model's accident: -0.62 / +0.62 on 2026-12-07's machine)
    assert min(zero_shot) < 0.3 and abs(sum(zero_shot)) < 0.2
    whole = AesMambaP(AesMambaPOptions(fine_tune_steps=3, fine_tune_layers="head", fine_tune_loss="mse"))
    state = whole.fit(_person(field, "R0")[0], ctx)
    assert {"head.fc1.weight", "head.fc1.bias", "head.fc2.weight", "head.fc2.bias"} <= set(state)
    assert not torch.equal(state["head.fc1.weight"], trained["head.fc1.weight"])
    with pytest.raises(KeyError, match="profile"):
        AesMambaP().fit(Support("para", "nobody", 2, 0, 0, torch.arange(2), torch.ones(2), np.zeros((1, 2))), ctx)


def test_prompt_tokens_concatenate_the_sentences():
    t = prompt_tokens([ART, PHOTO])
    assert t.shape[1] == 384 and len(t) == len(prompt_tokens([ART])) + len(prompt_tokens([PHOTO]))
    assert prompt_tokens([]).shape == (0, 384)
