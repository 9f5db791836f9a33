"""Instant λ (linearized, shared features) vs exact λ learning on the same people.

Reads a finished run's artifacts (``kedro run --pipeline personalize`` first;
``--data`` is its data folder, the default one by default): θ0, the task
vectors, the image cache, the few-shot splits and the experts' predictions.
For the first ``--people`` held-out people per source, repeat 0, at each k:

(a) **time** per person: exact λ learning (``--steps``, the papers' 500 by
    default) vs instant (its shared feature pass, shared out over the people
    of the run, plus the solve), and the feature pass alone; peak RSS;
(b) **accuracy**: mean SROCC on the query of exact, instant, instant with
    linear scoring, the hybrid (instant + ``--hybrid-steps`` exact steps) and
    the initialisation λ0;
(c) **shared vs per-person features**: the same expansion point computed
    once for everyone and per person give the same λ (max |Δλ|), and what
    each costs; (d) expanding at each person's own λ0 instead.

    python bench/instant_vs_exact.py [--people 4] [--ks 10 100] [--steps 500] [--hybrid-steps 10]
        [--l2 0.01] [--data data] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # noqa: F401
from instant_variants import InstantLinearScoring, InstantPerPerson
import numpy as np
import polars as pl
from _common import add_threads_arg, header, maxrss_mib

from aestimo.bundle import load_bundle
from aestimo.data.images import CachedImages
from aestimo.evaluation import metrics
from aestimo.models.theta0 import normalisation
from aestimo.personalization import Context
from aestimo.personalization.running import runs
from aestimo.personalization.methods.instant import Instant, InstantOptions
from aestimo.personalization.methods.task_vectors import LambdaOptions, TaskVectors


def load(data: Path):
    theta0 = load_bundle(data / "06_models/theta0.safetensors")
    tau = load_bundle(data / "06_models/task_vectors.safetensors")
    cache = load_bundle(data / "04_feature/image_cache.safetensors")
    images = CachedImages(cache["pixels"], theta0.meta["input_size"], *normalisation(theta0))
    tables = {n: pl.read_parquet(data / f) for n, f in {
        "fewshot": "05_model_input/fewshot_splits.parquet", "ratings": "03_primary/ratings.parquet",
        "generic": "05_model_input/generic_splits.parquet", "preds": "07_model_output/expert_predictions.parquet"}.items()}
    return theta0, tau, cache, images, tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--people", type=int, default=4, help="people per source")
    ap.add_argument("--ks", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--steps", type=int, default=500, help="exact λ learning steps")
    ap.add_argument("--hybrid-steps", type=int, default=10)
    ap.add_argument("--l2", type=float, default=None, help="instant's L2 strength (default: the method's)")
    add_threads_arg(ap)
    args = ap.parse_args()
    header("instant vs exact λ", args)
    theta0, tau, cache, images, t = load(args.data)
    experts = list(tau.meta["sources"])
    plan = runs.plan(t["fewshot"], t["ratings"], t["generic"], ks=args.ks, repeats=1, max_people_per_source=args.people)
    data = runs.run_data(plan, t["fewshot"], t["ratings"], t["preds"], cache.meta["image_ids"])
    ctx = Context(images, theta0, tau, experts)
    inst_opts = InstantOptions() if args.l2 is None else InstantOptions(l2=args.l2)
    print(f"   {plan.select('source', 'rater_id').n_unique()} people, ks {args.ks}, instant l2 {inst_opts.l2}, exact {args.steps} steps")

    for k in args.ks:
        rs = [r for r in data if r.support.k == k]
        sup, qry = [r.support for r in rs], [r.query for r in rs]
        rows = {}
        methods = {
            "init (λ0)": TaskVectors(LambdaOptions(steps=0)),
            "instant": Instant(inst_opts),
            "instant, linear scoring": InstantLinearScoring(inst_opts),
            f"hybrid (+{args.hybrid_steps} exact)": Instant(inst_opts.model_copy(update={"hybrid_steps": args.hybrid_steps})),
            f"exact ({args.steps} steps)": TaskVectors(LambdaOptions(steps=args.steps)),
        }
        ctx.shared.clear()
        for name, m in methods.items():
            t0 = time.perf_counter()
            m.prepare(sup, qry, ctx)
            prep = time.perf_counter() - t0
            fits, sroccs, lams = [], [], []
            for r in rs:
                t0 = time.perf_counter()
                state = m.fit(r.support, ctx)
                fits.append(time.perf_counter() - t0)
                sroccs.append(metrics.srocc(r.y_query, m.predict(state, r.query, ctx)))
                lams.append(state["lambda"])
            rows[name] = (prep / len(rs) + float(np.mean(fits)), prep, float(np.nanmean(sroccs)), lams)
        print(f"\n-- k = {k}: {len(rs)} people (repeat 0); seconds per person include the shared feature pass shared out")
        print(f"   {'method':<28}{'s/person':>10}{'prepare s':>11}{'SROCC':>8}")
        for name, (sec, prep, sr, _) in rows.items():
            print(f"   {name:<28}{sec:>10.3f}{prep:>11.2f}{sr:>8.3f}")
        ex = rows[f"exact ({args.steps} steps)"]
        ins = rows["instant"]
        print(f"   exact / instant time per person: {ex[0] / ins[0]:.0f}x;  SROCC instant - exact: {ins[2] - ex[2]:+.3f};"
              f"  hybrid - exact: {rows[f'hybrid (+{args.hybrid_steps} exact)'][2] - ex[2]:+.3f}")

        # (c) the same uniform point, features computed per person instead of once for everyone: equal λ
        per = Instant(inst_opts)
        diffs = []
        t0 = time.perf_counter()
        for i, r in enumerate(rs):
            ctx.shared.clear()
            per.prepare([r.support], [r.query], ctx)
            diffs.append((per.fit(r.support, ctx)["lambda"] - ins[3][i]).abs().max().item())
        per_t = (time.perf_counter() - t0) / len(rs)
        print(f"   features per person instead of shared: {per_t:.3f} s/person vs {ins[0]:.3f} shared"
              f" ({per_t / ins[0]:.1f}x); max |Δλ| over the people {max(diffs):.2e}")
        # (d) expanding at each person's own λ0 instead of the shared uniform point
        own = InstantPerPerson(inst_opts)
        t0 = time.perf_counter()
        own_sr = [metrics.srocc(r.y_query, own.predict(own.fit(r.support, ctx), r.query, ctx)) for r in rs]
        own_t = (time.perf_counter() - t0) / len(rs)
        print(f"   expansion at each person's λ0: SROCC {np.nanmean(own_sr):.3f} (shared point {ins[2]:.3f}),"
              f" {own_t:.3f} s/person including its scoring")
    print(f"\n   peak RSS {maxrss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
