"""Stage 2 (whole model) step time and peak memory, with and without channels_last input.

Runs the project's ``aestimo.training.experts.finetune`` (random crops + flips from a
uint8 cache, ``to_float``, forward, EMD/MSE/Bal-CE loss, backward, AdamW,
batch-norm statistics frozen) for a few steps at 64 px, batch 32, in one
fresh subprocess per variant so each gets its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``):

* ``channels_last``  -- ``build_scorer(channels_last=True)`` (the default);
* ``flag_off``       -- ``build_scorer(channels_last=False)``, nothing else
  changed. ``aestimo.data.images.to_float`` already returns a channels-last
  tensor, so inside ``finetune`` this is expected to run channels-last too;
* ``nchw``           -- ``channels_last=False`` *and* a forward pre-hook on the
  backbone that makes the input contiguous NCHW: the real "without
  channels_last" baseline.

Step time is the median gap between optimizer steps (a global step hook; the
first 2 steps dropped as warm-up); validation (16 images) runs once after the
last step. Ratios are printed against ``channels_last``.

    python bench/expert_training.py [--steps 12] [--batch 32] [--size 64] [--cache-size 72]
        [--rounds 1] [--weights random|package] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import _common  # noqa: F401
from _common import add_threads_arg, fmt_s, header

VARIANTS = ("channels_last", "flag_off", "nchw")


def child(args) -> None:
    import time

    import torch
    from _common import StepClock, maxrss_mib

    from aestimo.models.scorer import build_scorer, template_tensor
    from aestimo.training.data import Labels
    from aestimo.training.experts import StageConfig, finetune

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    v = args.child
    scorer = build_scorer(weights=None if args.weights == "random" else "package", head_seed=0, allow_random=True,
                          channels_last=(v == "channels_last"))
    if v == "nchw":
        scorer.backbone.register_forward_pre_hook(lambda m, a: (a[0].contiguous(),))
    template = template_tensor("ten")

    def labels(n):
        score = 1 + 9 * torch.rand(n, generator=gen)
        dist = torch.distributions.Dirichlet(torch.ones(10)).sample((n,))
        dist[n // 2 :] = float("nan")
        return Labels(score, dist)

    s = args.cache_size
    px_train = torch.randint(0, 256, (args.n_train, 3, s, s), dtype=torch.uint8, generator=gen)
    px_val = torch.randint(0, 256, (16, 3, s, s), dtype=torch.uint8, generator=gen)
    cfg = StageConfig(steps=args.steps, batch_size=args.batch, lr_head=(1.5e-5, 1.5e-6), lr_backbone=(1.5e-6, 1.5e-7),
                      eval_every=args.steps, patience=0, checkpoint_every=args.steps)
    layout: dict[str, bool] = {}

    def record_layout(module, inputs):  # what the first convolution actually receives
        layout.setdefault("cl", inputs[0].is_contiguous(memory_format=torch.channels_last))

    first_conv = next(m for m in scorer.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(record_layout)
    rss0 = maxrss_mib()
    t0 = time.perf_counter()
    with StepClock() as clock:
        finetune(scorer, px_train, labels(args.n_train), px_val, labels(16), template, args.size,
                 ((0.5,) * 3, (0.5,) * 3), cfg, args.seed)
    total = time.perf_counter() - t0
    print(json.dumps({"variant": v, "step": clock.median(skip=2), "total": total, "rss0": rss0,
                      "peak": maxrss_mib(), "conv_input_channels_last": layout.get("cl")}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="crop (experts.input_size)")
    ap.add_argument("--cache-size", type=int, default=72, help="experts.cache_size")
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=1, help="each round runs every variant once (order reversed on odd rounds)")
    ap.add_argument("--weights", choices=["random", "package"], default="random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    add_threads_arg(ap)
    args = ap.parse_args()
    if args.child:
        return child(args)
    header("stage 2 step time: channels_last vs NCHW input", args)

    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    passthrough = list(sys.argv[1:])
    for r in range(args.rounds):
        for v in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), *passthrough, "--child", v],
                                 capture_output=True, text=True, check=False)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode or not line:
                print(f"   {v}: child failed (rc {out.returncode})\n{out.stderr[-2000:]}")
                continue
            results[v].append(json.loads(line[-1]))

    best = {v: min(rs, key=lambda d: d["step"]) for v, rs in results.items() if rs}
    if "channels_last" not in best:
        return
    ref = best["channels_last"]
    print(f"   {'variant':14s} {'median step':>12s} {'vs channels_last':>17s} {'peak RSS':>9s} {'+ in training':>14s}  conv input CL?")
    for v, d in best.items():
        print(f"   {v:14s} {fmt_s(d['step']):>12s} {d['step'] / ref['step']:16.2f}x {d['peak']:7.0f} MiB "
              f"{d['peak'] - d['rss0']:10.0f} MiB   {d['conv_input_channels_last']}")
    if "nchw" in best:
        print(f"   speed-up of channels_last over NCHW (nchw / channels_last step): {best['nchw']['step'] / ref['step']:.2f}x")


if __name__ == "__main__":
    main()
