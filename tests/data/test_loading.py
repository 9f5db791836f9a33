"""Batches read by DataLoader workers are the batches read in the process: the same rows, the same
random draws, the same trained weights, the same state to resume from."""

import pytest
import torch

from aestimo.bundle import BundleWriter, StoredRows
from aestimo.data.images import Rows, train_view
from aestimo.data.loading import apply_views, blocks, draw_plan, training_views
from aestimo.models.scorer import build_scorer, template_tensor
from aestimo.training.data import Labels
from aestimo.training.experts import Interrupted, StageConfig, finetune


@pytest.fixture
def store(tmp_path):
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (37, 3, 40, 40), dtype=torch.uint8, generator=gen)
    with BundleWriter(tmp_path, {"pixels": (torch.uint8, tuple(pixels.shape))}, {}) as writer:
        writer.rows("pixels")[:] = pixels.numpy()
    path = writer.bundle.path
    return pixels, StoredRows(path, "pixels")


def test_blocks_read_by_workers_are_the_rows_in_order(store):
    pixels, stored = store
    here = list(blocks(stored, 8))
    ahead = list(blocks(stored, 8, workers=2))
    assert [len(b) for b in ahead] == [8, 8, 8, 8, 5]
    for a, b in zip(here, ahead, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(torch.cat(ahead), pixels)


def test_a_plan_draws_what_the_loop_always_drew(store):
    """Rows, then crop offsets and flips, in that order: the draws of the batch index followed by
    ``train_view``'s, so the experts trained before the loader existed stay the same."""
    pixels, _ = store
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(4):
        idx = torch.randint(0, len(pixels), (6,), generator=g1)
        old = train_view(pixels[idx], 32, g1)
        plan = draw_plan(len(pixels), 6, tuple(pixels.shape), 32, g2)
        assert torch.equal(plan.idx, idx)
        assert torch.equal(apply_views(pixels[plan.idx], 32, plan.tops, plan.lefts, plan.flips), old)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_views_read_ahead_leave_the_generator_where_the_consumed_steps_left_it(store):
    pixels, stored = store
    rows = Rows(stored, torch.arange(5, 30))
    gen, ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    stream = training_views(rows, len(rows), 4, 32, gen, workers=2)
    for _ in range(5):
        plan, views = next(stream)
        want = draw_plan(len(rows), 4, tuple(rows.shape), 32, ref)
        assert torch.equal(plan.idx, want.idx)
        assert torch.equal(views, apply_views(pixels[5:30][want.idx], 32, want.tops, want.lefts, want.flips))
        assert torch.equal(gen.get_state(), ref.get_state())  # not the state of the batches read ahead


def _fresh():
    torch.manual_seed(0)
    return build_scorer("tf_efficientnet_lite0", None, head_seed=0, allow_random=True)


def test_stage2_with_loader_workers_trains_the_same_weights_and_resumes_the_same(store, tmp_path):
    pixels, stored = store
    gen = torch.Generator().manual_seed(1)
    y = Labels(1 + 4 * torch.rand(37, generator=gen), torch.softmax(torch.randn(37, 10, generator=gen), 1))
    cfg = StageConfig(steps=6, batch_size=4, lr_head=(1e-3, 1e-4), lr_backbone=(1e-4, 1e-5), eval_every=2, patience=0,
                      checkpoint_every=2)
    t, v = torch.arange(0, 28), torch.arange(28, 37)
    args = (Rows(stored, t), y.subset(t), Rows(stored, v), y.subset(v), template_tensor("ten"))
    kw = dict(crop=32, norm=((0.5,) * 3, (0.5,) * 3), cfg=cfg, seed=5)
    here, here_hist = finetune(_fresh(), *args, **kw)
    ahead, ahead_hist = finetune(_fresh(), *args, **kw, loader_workers=2)
    assert ahead_hist == here_hist
    for k in here:
        assert torch.equal(ahead[k], here[k]), k

    ckpt = tmp_path / "stage2.safetensors"
    with pytest.raises(Interrupted):
        finetune(_fresh(), *args, **kw, checkpoint=ckpt, stop_after=3, loader_workers=2)
    resumed, _ = finetune(_fresh(), *args, **kw, checkpoint=ckpt)  # resumed without workers
    for k in here:
        assert torch.equal(resumed[k], here[k]), k
