"""Two experts trained side by side in two one-thread processes vs one after the other on two threads.

The chain trains its six experts one node at a time, each on every thread
(two here). Small-batch training does not use a second thread fully, so two
one-thread processes, one expert each, might finish a pair sooner. The catch:
a one-thread run rounds differently from a two-thread one, and training
amplifies it, so the experts (and every figure downstream) change. This
script measures both sides of that trade on the project's own loops:

* ``--stage 2`` (default): ``training.experts.finetune``, the whole scorer at
  64 px, batch 32, on random uint8 images with random labels;
* ``--stage 1``: ``training.experts.train_head``, the head on random 1280-d
  features, batch 128.

Each expert is one seed. **Sequential**: one subprocess with two threads
trains the two seeds one after the other. **Side by side**: two subprocesses
with one thread each, one seed each, started together (each waits for a
common start time after its imports and data). The script prints the wall
time of each (training only), their ratio, and the largest difference
between an expert's weights trained on two threads and on one.

    python bench/experts_side_by_side.py [--stage 2] [--steps 40] [--weights package|random]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _common  # noqa: F401
from _common import header


def child(args) -> None:
    import torch
    from safetensors.torch import save_file

    from aestimo.models.scorer import build_scorer, template_tensor
    from aestimo.training.data import Labels
    from aestimo.training.experts import StageConfig, finetune, train_head

    torch.set_num_threads(args.child_threads)
    seeds = [int(s) for s in args.child_seeds.split(",")]

    def labels(n: int, gen: torch.Generator) -> Labels:
        score = 1 + 9 * torch.rand(n, generator=gen)
        dist = torch.distributions.Dirichlet(torch.ones(10)).sample((n,))
        dist[n // 2 :] = float("nan")
        return Labels(score, dist)

    template = template_tensor("ten")
    jobs = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        scorer = build_scorer(weights=None if args.weights == "random" else "package", head_seed=0, allow_random=True)
        if args.stage == 1:
            feats, val = torch.randn(args.n_train, 1280, generator=gen), torch.randn(64, 1280, generator=gen)
            cfg = StageConfig(steps=args.steps, batch_size=128, lr_head=(1.5e-5, 1.5e-6), eval_every=args.steps,
                              patience=0, checkpoint_every=args.steps)
            y, yv = labels(args.n_train, gen), labels(64, gen)
            jobs.append((seed, lambda f=feats, v=val, y=y, yv=yv, s=seed, h=scorer.head: train_head(h, f, y, v, yv, template, cfg, s)))
        else:
            s = 72
            px = torch.randint(0, 256, (args.n_train, 3, s, s), dtype=torch.uint8, generator=gen)
            pv = torch.randint(0, 256, (16, 3, s, s), dtype=torch.uint8, generator=gen)
            cfg = StageConfig(steps=args.steps, batch_size=32, lr_head=(1.5e-5, 1.5e-6), lr_backbone=(3e-4, 3e-5),
                              eval_every=args.steps, patience=0, checkpoint_every=args.steps)
            y, yv = labels(args.n_train, gen), labels(16, gen)
            jobs.append((seed, lambda px=px, pv=pv, y=y, yv=yv, s=seed, m=scorer:
                         finetune(m, px, y, pv, yv, template, 64, ((0.5,) * 3, (0.5,) * 3), cfg, s)))
    while time.time() < args.start_at:  # the side-by-side children start training together
        time.sleep(0.01)
    t0 = time.perf_counter()
    for seed, train in jobs:
        best, _ = train()
        save_file({k: v.contiguous() for k, v in best.items()}, os.path.join(args.out, f"seed{seed}_t{args.child_threads}.safetensors"))
    print(json.dumps({"seconds": time.perf_counter() - t0, "end": time.time()}))


def _spawn(args, threads: int, seeds: str, start_at: float) -> subprocess.Popen:
    cmd = [sys.executable, os.path.abspath(__file__), "--stage", str(args.stage), "--steps", str(args.steps),
           "--n-train", str(args.n_train), "--weights", args.weights, "--out", args.out,
           "--child-threads", str(threads), "--child-seeds", seeds, "--start-at", str(start_at)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p: subprocess.Popen) -> dict:
    out, err = p.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        raise SystemExit(f"a child failed (rc {p.returncode}):\n{err[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", type=int, choices=[1, 2], default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--weights", choices=["package", "random"], default="package")
    ap.add_argument("--warmup", type=float, default=25.0, help="seconds the children get for imports and data")
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-seeds", help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_threads:
        return child(args)
    header(f"stage {args.stage}: two experts side by side (1 thread each) vs one after the other (2 threads)", args)
    from safetensors.torch import load_file

    with tempfile.TemporaryDirectory() as out:
        args.out = out
        seq = _result(_spawn(args, 2, "0,1", time.time() + args.warmup))
        start = time.time() + args.warmup
        pair = [_spawn(args, 1, "0", start), _spawn(args, 1, "1", start)]
        side = [_result(p) for p in pair]
        side_wall = max(r["end"] for r in side) - start
        diff = max(float((a - b).abs().max())
                   for seed in (0, 1)
                   for a, b in [(t2, load_file(os.path.join(out, f"seed{seed}_t1.safetensors"))[k])
                                for k, t2 in load_file(os.path.join(out, f"seed{seed}_t2.safetensors")).items()]
                   if a.is_floating_point())
    print(f"   one after the other, 2 threads: {seq['seconds']:7.1f} s")
    each = ", ".join(f"{r['seconds']:.1f} s" for r in side)
    print(f"   side by side, 1 thread each:    {side_wall:7.1f} s  ({seq['seconds'] / side_wall:.2f}x; each {each})")
    print(f"   largest weight difference, 2 threads vs 1 (same seed): {diff:.2e}")


if __name__ == "__main__":
    main()
