"""Person-level self-training: the base method refitted on support + kept pseudo-labels of the
person's unrated album images (never their query images)."""

import torch

from aestimo.personalization.methods.instant import Instant, InstantOptions
from aestimo.personalization.registry import Query, Support
from aestimo.personalization.methods.self_training import SelfTraining, SelfTrainingOptions
from tests.personalization.test_instant import person_runs, toy_context, toy_world


def _fit(t: float, pool: int = 16, beta: float = 5.0):
    merged = toy_world()
    x = torch.randn(120, 4, generator=torch.Generator().manual_seed(7))
    ctx = toy_context(merged, x)
    support, full, _ = person_runs(merged, x, target=2, k=10, seed=3)
    # the person rated 60 images; another person of the source rated the other 60 (the album's rest)
    query = Query(full.source, full.rows[:50], full.expert_scores[:, :50])
    other_s, _, _ = person_runs(merged, x, target=1, k=10, seed=4)
    rest = full.rows[50:]
    other = (Support(full.source, "other", 10, 0, 4, rest[:10], other_s.y[:10], full.expert_scores[:, 50:60]),
             Query(full.source, rest[10:], full.expert_scores[:, 60:]))
    wrapper = SelfTraining(SelfTrainingOptions(base="instant", base_options={"l2": 10.0, "init": "uniform"}, beta=beta, t=t,
                                               pool_size=pool, album_size=120, seed=0))
    wrapper.prepare([support, other[0]], [query, other[1]], ctx)
    base = Instant(InstantOptions(l2=10.0, init="uniform"))
    base.prepare([support], [query], ctx)
    return wrapper.fit(support, ctx), base.fit(support, ctx), wrapper, support, query, ctx


def test_nothing_kept_leaves_the_base_state():
    state, base, *_ = _fit(t=1.0, beta=0.0)  # unsharpened, no bin holds all the mass
    assert state["pseudo_kept"].item() == 0
    torch.testing.assert_close(state["lambda"], base["lambda"])


def test_kept_pseudo_labels_refit_the_state_and_predictions_come_from_it():
    state, base, wrapper, support, query, ctx = _fit(t=0.0)
    assert state["pseudo_kept"].item() == 16  # every image of the pool kept at t = 0
    assert (state["lambda"] - base["lambda"]).abs().max() > 1e-6
    scores = wrapper.predict(state, query, ctx)
    assert scores.shape == (len(query.rows),)


def test_the_pool_leaves_out_every_image_the_person_rated():
    state, _, wrapper, support, query, ctx = _fit(t=0.0, pool=1000)
    assert state["pseudo_kept"].item() == 60  # the other person's 60 images, none of the person's own 60
    album = ctx.shared["self_training/albums"][support.source]
    rows, _ = album.pool(torch.cat([support.rows, query.rows]), 1000, support.seed)
    assert not set(rows.tolist()) & set(torch.cat([support.rows, query.rows]).tolist())


def test_a_base_without_a_lambda_is_refused():
    import pytest

    with pytest.raises(ValueError, match="no λ"):
        SelfTraining(SelfTrainingOptions(base="output_mix"))
