"""Expert training: schedules, stage 1 on features, stage 2, exact resume after a kill."""

import math

import pytest
import torch

from aestimo.models.head import ScoreHead
from aestimo.models.scorer import build_scorer, template_tensor
from aestimo.training.data import Labels
from aestimo.training.experts import Interrupted, StageConfig, finetune, train_head
from aestimo.training.schedule import cosine_lr


def test_cosine_schedule_endpoints_and_midpoint():
    assert cosine_lr(0, 100, 1.5e-5, 1.5e-6) == pytest.approx(1.5e-5)
    assert cosine_lr(100, 100, 1.5e-5, 1.5e-6) == pytest.approx(1.5e-6)
    assert cosine_lr(50, 100, 1.0, 0.0) == pytest.approx(0.5)
    assert cosine_lr(25, 100, 1.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def _labels(n, gen, with_dist):
    score = 1 + 4 * torch.rand(n, generator=gen)
    dist = torch.softmax(torch.randn(n, 10, generator=gen), 1) if with_dist else torch.full((n, 10), float("nan"))
    return Labels(score, dist)


def test_stage1_learns_a_linear_target_on_features():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(256, 16, generator=gen)
    score = (3 + feats[:, 0]).clamp(1, 5)
    y = Labels(score, torch.full((256, 10), float("nan")))
    head = ScoreHead(16, hidden=32, dropout=0.0)
    head.reset_parameters(0)
    cfg = StageConfig(steps=300, batch_size=64, lr_head=(3e-2, 3e-3), eval_every=50, patience=0, checkpoint_every=1000)
    tmpl = template_tensor("five")
    before = ((head(feats[200:]) @ tmpl - score[200:]) ** 2).mean()
    best, history = train_head(head, feats[:200], y.subset(torch.arange(200)), feats[200:], y.subset(torch.arange(200, 256)), tmpl, cfg, seed=1)
    head.load_state_dict(best)
    after = ((head(feats[200:]) @ tmpl - score[200:]) ** 2).mean()
    assert after < 0.5 * before
    assert [h["step"] for h in history] == [50, 100, 150, 200, 250, 300]


def _stage2_inputs():
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (24, 3, 40, 40), dtype=torch.uint8, generator=gen)
    y = _labels(24, gen, with_dist=True)
    cfg = StageConfig(
        steps=6, batch_size=4, lr_head=(1e-3, 1e-4), lr_backbone=(1e-4, 1e-5), eval_every=2, patience=0, checkpoint_every=2
    )
    return pixels, y, cfg


def _fresh():
    torch.manual_seed(0)  # random-init backbone: the same one every time
    return build_scorer("tf_efficientnet_lite0", None, head_seed=0, allow_random=True)


def test_stage2_resume_after_kill_ends_with_the_same_weights(tmp_path):
    pixels, y, cfg = _stage2_inputs()
    idx_t, idx_v = torch.arange(16), torch.arange(16, 24)
    args = (pixels[idx_t], y.subset(idx_t), pixels[idx_v], y.subset(idx_v), template_tensor("ten"))
    kw = dict(crop=32, norm=((0.5,) * 3, (0.5,) * 3), cfg=cfg, seed=5)
    torch.manual_seed(123)
    full, full_hist = finetune(_fresh(), *args, **kw, checkpoint=None)

    ckpt = tmp_path / "stage2.safetensors"
    with pytest.raises(Interrupted):
        finetune(_fresh(), *args, **kw, checkpoint=ckpt, stop_after=3)  # killed after step 3 (checkpoint at 2)
    assert ckpt.exists()
    torch.manual_seed(999)  # a new process has other global RNG state; the checkpoint restores it
    resumed, hist = finetune(_fresh(), *args, **kw, checkpoint=ckpt)
    assert [h["step"] for h in hist] == [h["step"] for h in full_hist]
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=0, msg=k)


def test_stage2_keeps_batchnorm_statistics_frozen():
    pixels, y, cfg = _stage2_inputs()
    scorer = _fresh()
    before = {k: v.clone() for k, v in scorer.state_dict().items() if "running" in k}
    best, _ = finetune(scorer, pixels[:16], y.subset(torch.arange(16)), pixels[16:], y.subset(torch.arange(16, 24)),
                       template_tensor("ten"), crop=32, norm=((0.5,) * 3, (0.5,) * 3), cfg=cfg, seed=0)
    for k, v in before.items():
        assert torch.equal(best[k], v), k


def test_checkpoint_of_another_configuration_is_ignored(tmp_path):
    pixels, y, cfg = _stage2_inputs()
    idx_t, idx_v = torch.arange(16), torch.arange(16, 24)
    args = (pixels[idx_t], y.subset(idx_t), pixels[idx_v], y.subset(idx_v), template_tensor("ten"))
    kw = dict(crop=32, norm=((0.5,) * 3, (0.5,) * 3), cfg=cfg)
    ckpt = tmp_path / "c.safetensors"
    with pytest.raises(Interrupted):
        finetune(_fresh(), *args, **kw, seed=1, checkpoint=ckpt, stop_after=2)
    fresh_run, _ = finetune(_fresh(), *args, **kw, seed=2, checkpoint=None)
    via_ckpt, _ = finetune(_fresh(), *args, **kw, seed=2, checkpoint=ckpt)
    k = "head.fc2.weight"
    torch.testing.assert_close(via_ckpt[k], fresh_run[k], rtol=0, atol=0)


def test_a_finished_stage_is_reused_and_a_changed_input_trains_again(tmp_path, monkeypatch):
    from aestimo.training import experts as loop

    pixels, y, cfg = _stage2_inputs()
    idx_t, idx_v = torch.arange(16), torch.arange(16, 24)
    args = (pixels[idx_t], y.subset(idx_t), pixels[idx_v], y.subset(idx_v), template_tensor("ten"))
    kw = dict(crop=32, norm=((0.5,) * 3, (0.5,) * 3), cfg=cfg, seed=3)
    ckpt = tmp_path / "stage2.safetensors"
    first, first_hist = finetune(_fresh(), *args, **kw, checkpoint=ckpt)
    assert ckpt.exists()

    calls = []
    real_cosine = loop.cosine_lr
    monkeypatch.setattr(loop, "cosine_lr", lambda *a: calls.append(a) or real_cosine(*a))
    again, hist = finetune(_fresh(), *args, **kw, checkpoint=ckpt)
    assert calls == []  # no training step ran
    assert hist == first_hist and all(torch.equal(again[k], first[k]) for k in first)

    changed = y.subset(idx_t)
    changed = type(changed)(changed.score + 0.5, changed.dist)  # the same images with other labels
    finetune(_fresh(), pixels[idx_t], changed, *args[2:], **kw, checkpoint=ckpt)
    assert len(calls) == 2 * cfg.steps  # a changed input trains again (two parameter groups per step)


def test_long_tail_modules_change_stage1_reproducibly_and_off_is_plain():
    from aestimo.training.long_tail import LongTailOptions

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(96, 8, generator=gen)
    y = Labels((3 + feats[:, 0]).clamp(1, 5), torch.full((96, 10), float("nan")))
    base = StageConfig(steps=20, batch_size=32, lr_head=(1e-2, 1e-3), eval_every=10, patience=0, checkpoint_every=1000)

    def fit(cfg):
        head = ScoreHead(8, hidden=16, dropout=0.0)
        head.reset_parameters(0)
        return train_head(head, feats[:64], y.subset(torch.arange(64)), feats[64:], y.subset(torch.arange(64, 96)),
                          template_tensor("five"), cfg, seed=3)[0]

    plain = fit(base)
    off = fit(base.model_copy(update={"long_tail": LongTailOptions()}))
    elta = fit(base.model_copy(update={"long_tail": LongTailOptions(tfa=True, flsa=1.0)}))
    again = fit(base.model_copy(update={"long_tail": LongTailOptions(tfa=True, flsa=1.0)}))
    torch.testing.assert_close(off["fc2.weight"], plain["fc2.weight"], rtol=0, atol=0)
    assert (elta["fc2.weight"] - plain["fc2.weight"]).abs().max() > 1e-6
    torch.testing.assert_close(again["fc2.weight"], elta["fc2.weight"], rtol=0, atol=0)


def test_a_self_training_round_reads_only_kept_pseudo_labels():
    from aestimo.training.experts import self_train
    from aestimo.training.pseudo_labels import PseudoLabels

    pixels, y, cfg = _stage2_inputs()
    pool = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(9))
    args = dict(pixels_train=pixels[:16], y_train=y.subset(torch.arange(16)), pixels_val=pixels[16:], y_val=y.subset(torch.arange(16, 24)),
                template=template_tensor("ten"), crop=32, norm=((0.5,) * 3, (0.5,) * 3), cfg=cfg, seed=0)
    dist = torch.softmax(torch.randn(6, 10, generator=torch.Generator().manual_seed(1)), 1)
    none_kept = PseudoLabels(dist, dist @ template_tensor("ten"), torch.zeros(6, dtype=torch.bool))
    labelled_only, _ = self_train(_fresh(), pixels_pool=pool[:0], pseudo=None, **args)
    discarded, _ = self_train(_fresh(), pixels_pool=pool, pseudo=none_kept, **args)
    kept, _ = self_train(_fresh(), pixels_pool=pool, pseudo=PseudoLabels(none_kept.dist, none_kept.score, torch.ones(6, dtype=torch.bool)), **args)
    k = "head.fc2.weight"
    torch.testing.assert_close(discarded[k], labelled_only[k], rtol=0, atol=0)  # a discarded pseudo-label weighs nothing
    assert (kept[k] - labelled_only[k]).abs().max() > 0


def test_tail_mixup_trains_the_same_weights_twice_on_two_threads():
    """TFA mixes rows of the batch's features, an anchor often drawn twice: its backward must not
    accumulate the duplicates in a thread-dependent order (advanced indexing does, on 2 threads)."""
    from aestimo.training.long_tail import LongTailOptions

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gen = torch.Generator().manual_seed(0)
        feats = torch.randn(96, 1280, generator=gen)
        y = _labels(96, gen, with_dist=True)

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                # the body gives the features gradients, as the backbone does in stage 2
                self.body, self.head = torch.nn.Linear(1280, 1280), ScoreHead(1280, hidden=64, dropout=0.0)
                self.head.reset_parameters(0)

            def parts(self, f):
                return self.head.parts(f)

        cfg = StageConfig(steps=6, batch_size=64, lr_head=(1e-3, 1e-4), eval_every=3, checkpoint_every=100,
                          long_tail=LongTailOptions(tfa=True, tfa_ratio=4.0))
        from aestimo.training.experts import _batch_loss

        def run():
            net = Net()
            opt = torch.optim.SGD(net.parameters(), lr=0.1)
            g = torch.Generator().manual_seed(3)
            for _ in range(cfg.steps):
                idx = torch.randint(0, 96, (64,), generator=g)
                loss = _batch_loss(net.head, net.body(feats[idx]), y.subset(idx), template_tensor("ten"), None, cfg, g)
                opt.zero_grad()
                loss.backward()
                opt.step()
            return net.body.weight.detach().clone()

        first = run()
        assert all(torch.equal(first, run()) for _ in range(3))
    finally:
        torch.set_num_threads(threads)
