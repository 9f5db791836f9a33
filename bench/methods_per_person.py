"""Each configured personalization method's seconds per person, on the same people, in one run.

Reads a finished default run (``--data``, default ``data``; the project's ``conf/base``
parameters) and runs every method of ``personalize.methods`` (or ``--methods``) on the first
``--people`` held-out people of each source, repeat 0, at each k, here on one thread (no worker
processes, so the figures compare methods and not pools). Prints seconds per person for fitting
and predicting, each method's shared preparation (e.g. instant's feature pass, computed once for
everyone) spread over its runs, and the ratio to instant. Seconds change from machine to machine;
the ratios much less.

    python bench/methods_per_person.py [--data data] [--people 2] [--methods instant pa_iaa ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
import torch
import yaml

from aestimo import config
from aestimo.bundle import load_bundle
from aestimo.personalization import generic_models
from aestimo.personalization.running import runs, selection
from aestimo.personalization.methods.field.field_data import profiles_by_person
from aestimo.personalization.running.jobs import prepare, run_job
from aestimo.personalization.running.context import build_context


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--people", type=int, default=2, help="people per source")
    ap.add_argument("--methods", nargs="*", default=None, help="entries of personalize.methods (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = Path(args.data)
    raw = yaml.safe_load(Path("conf/base/parameters_personalize.yml").read_text())["personalize"]
    raw.update(people=None, max_people_per_source=args.people, repeats=1, workers=1)
    if args.methods:
        raw["methods"] = {k: v for k, v in raw["methods"].items() if k in args.methods}
        raw["deploy_method"] = None
    for entry in raw["methods"].values():
        entry.pop("sample", None)  # the same people for every method
    p = config.parse("personalize", raw)
    load = {n: pl.read_parquet(d / f) for n, f in {
        "fewshot_splits": "05_model_input/fewshot_splits.parquet", "ratings": "03_primary/ratings.parquet",
        "generic_splits": "05_model_input/generic_splits.parquet", "expert_predictions": "07_model_output/expert_predictions.parquet",
        "user_profiles": "03_primary/user_profiles.parquet"}.items()}
    chosen = pl.read_csv(d / "08_reporting/personalization/chosen_settings.csv")
    bundles = {n: load_bundle(d / f) for n, f in {
        "image_cache": "04_feature/image_cache.safetensors", "backbone_features": "04_feature/backbone_features.safetensors",
        "theta0": "06_models/theta0.safetensors", "task_vectors": "06_models/task_vectors.safetensors",
        **{name: f"06_models/field/{name}.safetensors" for name in generic_models()}}.items()}
    ctx = build_context(load["expert_predictions"], bundles["image_cache"], bundles["backbone_features"], bundles["theta0"],
                   bundles["task_vectors"])
    ctx.artifacts = {name: bundles[name] for name in generic_models()}
    ctx.profiles = profiles_by_person(load["user_profiles"])
    plan = runs.plan(load["fewshot_splits"], load["ratings"], load["generic_splits"], None, p.ks, 1, args.people)
    data = runs.run_data(plan, load["fewshot_splits"], load["ratings"], load["expert_predictions"], bundles["image_cache"].meta["image_ids"])
    jobs = runs.build_jobs(p.configured_methods(ctx.experts, selection.chosen_settings(chosen)), data, set(ctx.profiles))
    prepared = prepare(ctx, jobs)
    seconds: dict[tuple[str, int], list[float]] = {}
    for job in jobs:
        t0 = time.perf_counter()
        run_job(ctx, job)
        seconds.setdefault((job.name, job.support.k), []).append(time.perf_counter() - t0)
    rows = []
    for (name, k), v in seconds.items():
        n_runs = sum(len(x) for (m, _), x in seconds.items() if m == name)
        rows.append({"method": name, "k": k, "people": len(v),
                     "seconds_per_person": sum(v) / len(v) + prepared.get(name, 0.0) / n_runs})
    table = pl.DataFrame(rows)
    ref = table.filter(pl.col("method") == "instant").select("k", pl.col("seconds_per_person").alias("instant"))
    if ref.height:
        table = table.join(ref, on="k", how="left").with_columns((pl.col("seconds_per_person") / pl.col("instant")).alias("x_instant"))
    with pl.Config(tbl_rows=-1, tbl_width_chars=160):
        print(table.sort("k", "seconds_per_person"))


if __name__ == "__main__":
    main()
