"""How should instant pull toward λ0 at k = 100, where no validation person can say?

On the default world the validation people (raters no expert learned from,
not test people) have 20–70 ratings: they choose instant's pull at k = 10
only. This script looks at k = 100 on the only people with enough ratings who
are **not test people**: the FLICKR-AES- and PARA-like *training* raters. The
experts learned from the mean of their ratings, so their figures flatter every
method a little; they never read a test person. For each person (first
``--people`` per source, ``--repeats`` splits at k = 100) it compares λ0 alone,
instant at each fixed pull of the grid, and instant choosing its pull inside
the support by cross-validation (``l2_grid``), all scored by the exact merged
model; it prints the mean SROCC over people (repeats averaged first).

    python experiments/instant_pull_at_k100.py [--data data] [--people 15] [--repeats 2] [--grid 1 3 10 30 100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
import torch

from aestimo.bundle import load_bundle
from aestimo.data.splits import fewshot_splits
from aestimo.evaluation import people as over_people
from aestimo.models.inference import predict
from aestimo.models.theta0 import load_scorer, normalisation
from aestimo.personalization.running import runs
from aestimo.personalization.methods.instant import Instant, InstantOptions
from aestimo.personalization.running.jobs import Job, prepare, run_jobs
from aestimo.personalization.methods.task_vectors import LambdaOptions, TaskVectors
from aestimo.pipelines.personalize.nodes import _context

GRID = (1.0, 3.0, 10.0, 30.0, 100.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--people", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--grid", type=float, nargs="+", default=list(GRID), help="the pulls tried, fixed and by CV")
    args = ap.parse_args()
    grid = tuple(args.grid)
    d = Path(args.data)
    ratings = pl.read_parquet(d / "03_primary/ratings.parquet")
    test = pl.read_parquet(d / "05_model_input/test_people.parquet")
    cache, theta0 = load_bundle(d / "04_feature/image_cache.safetensors"), load_bundle(d / "06_models/theta0.safetensors")
    taus, feats = load_bundle(d / "06_models/task_vectors.safetensors"), load_bundle(d / "04_feature/backbone_features.safetensors")
    people = (
        ratings.filter(pl.col("source").is_in(["flickr_aes", "para"]) & pl.col("rater_id").is_not_null())
        .group_by("source", "rater_id").agg(pl.len().alias("n"))
        .join(test.select("source", "rater_id"), on=["source", "rater_id"], how="anti")
        .filter(pl.col("n") >= args.k + 10).sort("source", "rater_id")
        .group_by("source", maintain_order=True).head(args.people)
    )
    splits, _ = fewshot_splits(ratings, people, ks=[args.k], repeats=args.repeats, min_query=10, seed=7)
    ids = splits["image_id"].unique().sort().to_list()
    rows_of = {iid: i for i, iid in enumerate(cache.meta["image_ids"])}
    pixels = cache["pixels"][torch.as_tensor([rows_of[i] for i in ids])]
    crop, norm = theta0.meta["input_size"], normalisation(theta0)
    preds = []
    for expert in taus.meta["sources"]:  # the experts' zero-shot scores of these people's images
        probs = predict(load_scorer(theta0, load_bundle(d / f"06_models/experts/{expert}.safetensors").tensors), pixels, crop, norm)
        preds.append(pl.DataFrame({"expert": expert, "image_id": ids, "probs": probs.double().numpy().tolist()}))
    expert_predictions = pl.concat(preds)
    ctx = _context(expert_predictions, cache, feats, theta0, taus)
    ctx.workers = args.workers
    plan = splits.select(*runs.RUN, "seed").unique().sort(*runs.RUN)
    data = runs.run_data(plan, splits, ratings, expert_predictions, cache.meta["image_ids"])
    methods = {"λ0 alone": TaskVectors(LambdaOptions(steps=0))}
    methods |= {f"instant l2={v:g}": Instant(InstantOptions(l2=v)) for v in grid}
    methods["instant, l2 by CV in the support"] = Instant(InstantOptions(l2_grid=grid, cv_from_k=args.k))
    jobs = [Job(name, m, r.support, r.query) for name, m in methods.items() for r in data]
    prepare(ctx, jobs)
    results = run_jobs(ctx, jobs, workers=args.workers)
    y_of = {(r.support.source, r.support.rater_id, r.support.repeat): r.y_query for r in data}
    rows, chosen = [], []
    for job, res in zip(jobs, results):
        s = job.support
        rows.append(runs.metric_row(s.source, s.rater_id, job.name, s.k, s.repeat, y_of[(s.source, s.rater_id, s.repeat)], res.scores))
        if "CV" in job.name:
            chosen.append(float(res.state["l2"]))
    per = over_people.per_person(pl.DataFrame(rows, schema=runs.METRIC_SCHEMA))
    table = per.group_by("method").agg(pl.len().alias("people"), pl.col("srocc").mean().alias("srocc_mean")).sort("srocc_mean", descending=True)
    pl.Config.set_tbl_rows(50)
    pl.Config.set_fmt_str_lengths(60)
    print(f"k = {args.k}, {people.height} non-test training raters (FLICKR-AES-, PARA-like), {args.repeats} repeats")
    print(table)
    print("pulls chosen by CV:", pl.Series(chosen).value_counts().sort("")) if chosen else None


if __name__ == "__main__":
    main()
