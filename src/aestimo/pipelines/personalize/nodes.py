"""Nodes of the ``personalize`` stage: plan (with the leakage guard), λ per person,
zero-shot and oracle baselines under the same splits, and the summary."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

from aestimo import comparison, config, experts, metrics  # noqa: E402
from aestimo.datasets.safetensors_dataset import TensorBundle  # noqa: E402
from aestimo.models.scorer import template_tensor  # noqa: E402
from aestimo.parallel import Images, Job, Result, run_jobs  # noqa: E402
from aestimo.personalize import PersonalizeConfig, personalize, predict  # noqa: E402
from aestimo.report import main_methods  # noqa: E402
from aestimo.scales import SCALES  # noqa: E402
from aestimo.taskvec import MergedScorer  # noqa: E402

log = logging.getLogger(__name__)

METRIC_SCHEMA = {
    "source": pl.String,
    "rater_id": pl.String,
    "method": pl.String,
    "k": pl.Int64,
    "repeat": pl.Int64,
    "srocc": pl.Float64,
    "plcc": pl.Float64,
    "n_query": pl.Int64,
}


def _params(params: dict[str, Any]) -> config.PersonalizeParams:
    p = config.parse("personalize", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    return p


def person_key(source: str, rater_id: str) -> str:
    return f"{source}__{rater_id}"


def plan_personalization(
    fewshot_splits: pl.DataFrame,
    ratings: pl.DataFrame,
    generic_splits: pl.DataFrame,
    params: dict[str, Any],
) -> pl.DataFrame:
    """Who is personalized, for which k and repeats. Stops on an unknown person or on a
    person whose ratings touch expert training data (leakage guard)."""
    p = _params(params)
    plan = fewshot_splits.select("source", "rater_id", "k", "repeat", "seed").unique()
    if p.people is not None:
        wanted = []
        for ref in p.people:
            src, _, rid = ref.rpartition(":")
            hit = ratings.filter((pl.col("rater_id") == rid) & ((pl.col("source") == src) if src else pl.lit(True)))
            if hit.height == 0:
                raise ValueError(f"parameter 'personalize.people': unknown person '{ref}' (no ratings with that id)")
            for s in hit["source"].unique().to_list():
                wanted.append((s, rid))
        wanted_df = pl.DataFrame(wanted, schema={"source": pl.String, "rater_id": pl.String}, orient="row")
        missing = wanted_df.join(plan, on=["source", "rater_id"], how="anti")
        if missing.height:
            raise ValueError(
                f"parameter 'personalize.people': {missing.rows()[:5]} are not held-out people with few-shot splits "
                "(they are expert-training raters, or have too few ratings): personalizing them would leak"
            )
        plan = plan.join(wanted_df, on=["source", "rater_id"], how="semi")
    # leakage guard: no held-out person's image may be in an expert's train/val/test split
    touched = (
        ratings.join(plan.select("source", "rater_id").unique(), on=["source", "rater_id"], how="semi")
        .join(generic_splits.filter(pl.col("split") != "personal"), on="image_id", how="inner")
    )
    if touched.height:
        bad = touched.select("source", "rater_id", "image_id", "split").head(5).rows()
        raise ValueError(
            f"leakage: {touched['rater_id'].n_unique()} held-out people rated images in expert splits, e.g. {bad}; "
            "rebuild generic_splits (kedro run --pipeline ingest) so their images are 'personal'"
        )
    if p.ks is not None:
        plan = plan.filter(pl.col("k").is_in(p.ks))
    if p.repeats is not None:
        plan = plan.filter(pl.col("repeat") < p.repeats)
    if p.max_people_per_source is not None:
        keep = (
            plan.select("source", "rater_id").unique().sort("source", "rater_id")
            .group_by("source", maintain_order=True).head(p.max_people_per_source)
        )
        plan = plan.join(keep, on=["source", "rater_id"], how="semi")
    if plan.height == 0:
        raise ValueError("nothing to personalize: no held-out person has few-shot splits for the configured ks/people")
    plan = plan.sort("source", "rater_id", "k", "repeat")
    log.info(
        "personalization plan: %d people, ks %s, %d runs per method",
        plan.select("source", "rater_id").n_unique(),
        sorted(plan["k"].unique().to_list()),
        plan.height,
    )
    return plan


def _person_tables(plan, fewshot_splits, ratings):
    return (
        fewshot_splits.join(plan.select("source", "rater_id", "k", "repeat"), on=["source", "rater_id", "k", "repeat"], how="semi")
        .join(ratings.select("source", "rater_id", "image_id", "score", "score_template"), on=["source", "rater_id", "image_id"])
        .sort("source", "rater_id", "k", "repeat", "role", "image_id")
    )


def _expert_scores(expert_predictions: pl.DataFrame, ids: list[str], template: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each expert's zero-shot score (on ``template``) of ``ids``: ``(n_experts, len(ids))``."""
    order = pl.DataFrame({"image_id": ids, "_pos": np.arange(len(ids))})
    names = expert_predictions["expert"].unique(maintain_order=True).to_list()
    out = np.empty((len(names), len(ids)))
    for i, e in enumerate(names):
        t = expert_predictions.filter(pl.col("expert") == e).join(order, on="image_id").sort("_pos")
        if t.height != len(ids):
            raise ValueError(f"expert_predictions lacks {len(ids) - t.height} images for expert '{e}'")
        out[i] = np.stack(t["probs"].to_list()) @ template
    return names, out


def personalize_people(
    plan: pl.DataFrame,
    fewshot_splits: pl.DataFrame,
    ratings: pl.DataFrame,
    expert_predictions: pl.DataFrame,
    image_cache: TensorBundle,
    theta0: TensorBundle,
    task_vectors: TensorBundle,
    params: dict[str, Any],
) -> tuple[dict[str, TensorBundle], pl.DataFrame, pl.DataFrame]:
    """λ per person × method × k × repeat, and SROCC / PLCC on each person's query images."""
    p = _params(params)
    rows_of = {iid: i for i, iid in enumerate(image_cache.meta["image_ids"])}
    crop, norm = theta0.meta["input_size"], experts.norm_of(theta0)
    tables = _person_tables(plan, fewshot_splits, ratings)
    images = Images(image_cache["pixels"], crop, *norm)

    def rows(ids: list[str]) -> torch.Tensor:
        return torch.as_tensor([rows_of[i] for i in ids], dtype=torch.long)

    runs = []  # (source, rater, k, repeat, seed, support ids, y support, query ids, y query)
    for (source, rater, k, rep), t in tables.group_by(["source", "rater_id", "k", "repeat"], maintain_order=True):
        sup, qry = t.filter(pl.col("role") == "support"), t.filter(pl.col("role") == "query")
        runs.append((source, rater, k, rep, int(t["seed"][0]), sup, qry))
    lambdas: dict[str, dict[str, torch.Tensor]] = {}
    metric_rows, timing_rows = [], []
    jobs, where = [], []  # where: (method, source, k, run) of each job
    for method, m in p.methods.items():
        cfg = PersonalizeConfig(
            steps=p.steps, batch_size=p.batch_size, lr=p.lr, weight_decay=p.weight_decay, dropout=p.dropout, loss=m.loss,
            init=m.init, init_temperature=p.init_temperature, layerwise=m.layerwise,
        )
        for (source, k), group in _groups(runs):
            if m.ks is not None and k not in m.ks:
                continue
            template = template_tensor(SCALES[source].template)
            tmpl_np = template.numpy().astype(np.float64)
            for run in group:
                (_, rater, _, rep, seed, sup, qry) = run
                ids = sup["image_id"].to_list()
                _, zs = _expert_scores(expert_predictions, ids, tmpl_np)
                y = torch.as_tensor(sup["score_template"].to_numpy(), dtype=torch.float32)
                jobs.append(Job(f"{rater}/{rep}", rows(ids), y, zs, seed, rows(qry["image_id"].to_list()), template, cfg))
                where.append((method, source, k, run))
    log.info("personalizing: %d runs (%d methods) on %d worker(s)", len(jobs), len(p.methods), p.workers if not p.batched else 1)
    if p.batched:
        merged = experts.merged_scorer(theta0, task_vectors)
        results = _run_batched(merged, images, jobs, where)
    else:
        results = run_jobs(theta0, task_vectors, images, jobs, workers=p.workers)
    seconds: dict[tuple[str, str, int], list[float]] = {}
    for (method, source, k, run), res in zip(where, results):
        (_, rater, _, rep, _seed, _sup, qry) = run
        metric_rows.append(_metric_row(source, rater, method, k, rep, qry["score"].to_numpy(), res.scores.numpy()))
        lambdas.setdefault(person_key(source, rater), {})[f"{method}/k{k}/r{rep}"] = res.lam
        seconds.setdefault((method, source, k), []).append(res.seconds)
    for (method, source, k), s in seconds.items():
        timing_rows.append({"method": method, "source": source, "k": k, "runs": len(s), "seconds": float(sum(s)),
                            "seconds_per_run": float(np.mean(s)), "steps": p.steps, "workers": 1 if p.batched else p.workers})
    coefficients = {
        key: TensorBundle(t, {"sources": task_vectors.meta["sources"], "names": task_vectors.meta["names"], "deploy_method": p.deploy_method})
        for key, t in lambdas.items()
    }
    return coefficients, pl.DataFrame(metric_rows, schema=METRIC_SCHEMA), pl.DataFrame(timing_rows)


def _run_batched(merged: MergedScorer, images: Images, jobs: list[Job], where: list) -> list[Result]:
    """Batched mode: the people of one method × source × k in one vmapped optimisation."""
    results: list[Result | None] = [None] * len(jobs)
    groups: dict[tuple, list[int]] = {}
    for i, (method, source, k, _run) in enumerate(where):
        groups.setdefault((method, source, k), []).append(i)
    for (method, source, k), idx in groups.items():
        first = jobs[idx[0]]
        t0 = time.perf_counter()
        lam = personalize(merged, [jobs[i].person(images) for i in idx], first.template, first.cfg, batched=True, desc=f"{method} {source} k={k}")
        per_run = (time.perf_counter() - t0) / len(idx)
        for i, lam_i in zip(idx, lam):
            results[i] = Result(lam_i, predict(merged, images(jobs[i].query), lam_i, jobs[i].template), per_run)
    return results  # type: ignore[return-value]


def _groups(runs):
    out: dict[tuple[str, int], list] = {}
    for r in runs:
        out.setdefault((r[0], r[2]), []).append(r)
    return sorted(out.items())


def _metric_row(source, rater, method, k, rep, y, pred) -> dict:
    return {
        "source": source, "rater_id": rater, "method": method, "k": int(k), "repeat": int(rep),
        "srocc": metrics.srocc(y, pred), "plcc": metrics.plcc(y, pred), "n_query": len(y),
    }


def zero_shot_metrics(
    plan: pl.DataFrame, fewshot_splits: pl.DataFrame, ratings: pl.DataFrame, expert_predictions: pl.DataFrame
) -> pl.DataFrame:
    """Each expert alone and their ensemble (mean of the experts' scores), on the same query images."""
    rows = []
    tables = _person_tables(plan, fewshot_splits, ratings).filter(pl.col("role") == "query")
    for (source, rater, k, rep), t in tables.group_by(["source", "rater_id", "k", "repeat"], maintain_order=True):
        tmpl = template_tensor(SCALES[source].template).numpy().astype(np.float64)
        names, zs = _expert_scores(expert_predictions, t["image_id"].to_list(), tmpl)
        y = t["score"].to_numpy()
        rows.append(_metric_row(source, rater, "zero_shot_ensemble", k, rep, y, zs.mean(axis=0)))
        for name, z in zip(names, zs):
            rows.append(_metric_row(source, rater, f"zero_shot_{name}", k, rep, y, z))
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def oracle_metrics(
    plan: pl.DataFrame, fewshot_splits: pl.DataFrame, ratings: pl.DataFrame, world_utilities: pl.DataFrame
) -> pl.DataFrame:
    """The ceiling: each person's noise-free utility (the world's hidden truth) as the prediction."""
    if world_utilities.height == 0:
        return pl.DataFrame(schema=METRIC_SCHEMA)
    rows = []
    tables = (
        _person_tables(plan, fewshot_splits, ratings)
        .filter(pl.col("role") == "query")
        .join(world_utilities.select("source", "rater_id", "image_id", "utility"), on=["source", "rater_id", "image_id"])
    )
    for (source, rater, k, rep), t in tables.group_by(["source", "rater_id", "k", "repeat"], maintain_order=True):
        rows.append(_metric_row(source, rater, "oracle", k, rep, t["score"].to_numpy(), t["utility"].to_numpy()))
    return pl.DataFrame(rows, schema=METRIC_SCHEMA)


def summarize(personal: pl.DataFrame, zero_shot: pl.DataFrame, oracle: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All per-run metrics in one table, and the summary per method × k: mean ± std, where
    std is over repeats of the person-averaged SROCC (as the papers report)."""
    allm = pl.concat([personal, zero_shot, oracle])
    per_repeat = allm.group_by("method", "k", "repeat").agg(
        pl.col("srocc").mean().alias("srocc"), pl.col("plcc").mean().alias("plcc"), pl.len().alias("people")
    )
    summary = (
        per_repeat.group_by("method", "k")
        .agg(
            pl.col("srocc").mean().alias("srocc_mean"),
            pl.col("srocc").std(ddof=0).alias("srocc_std"),
            pl.col("plcc").mean().alias("plcc_mean"),
            pl.col("plcc").std(ddof=0).alias("plcc_std"),
            pl.col("repeat").n_unique().alias("repeats"),
            pl.col("people").max().alias("people"),
        )
        .sort("k", "srocc_mean", descending=[False, True])
    )
    return allm, summary


def compare_methods(personalization_metrics: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """The deployed method paired with every other method on the same runs (aestimo.comparison)."""
    return comparison.against_all(personalization_metrics, config.parse("personalize", params).deploy_method)


def plot_summary(summary: pl.DataFrame) -> plt.Figure:
    """Mean SROCC ± std per method, one group of bars per k (single experts omitted)."""
    s = summary.filter(main_methods("method"))
    ks = sorted(s["k"].unique().to_list())
    methods = s.filter(pl.col("k") == ks[0]).sort("srocc_mean")["method"].to_list()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(methods) * len(ks) + 1.5))
    h = 0.8 / len(ks)
    for j, k in enumerate(ks):
        t = s.filter(pl.col("k") == k)
        vals = {r["method"]: r for r in t.iter_rows(named=True)}
        y = np.arange(len(methods)) + j * h
        ax.barh(y, [vals.get(m, {}).get("srocc_mean", np.nan) for m in methods], height=h,
                xerr=[vals.get(m, {}).get("srocc_std", 0) or 0 for m in methods], label=f"k = {k}")
    ax.set_yticks(np.arange(len(methods)) + h * (len(ks) - 1) / 2, methods)
    ax.set_xlabel("mean SROCC over people (± std over repeats)")
    ax.set_title("few-shot personalization")
    ax.legend()
    fig.tight_layout()
    return fig
