"""Nodes of the ``personalize`` stage: the plan (with the leakage guard), every configured method on
every planned person, the summary and the paired comparisons. Thin: the work is in
:mod:`aestimo.personalization` and :mod:`aestimo.evaluation`."""

from __future__ import annotations

import logging
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import torch  # noqa: E402

from aestimo import config  # noqa: E402
from aestimo.bundle import TensorBundle  # noqa: E402
from aestimo.evaluation import people  # noqa: E402
from aestimo.evaluation.report import best_method, detail_rows, main_methods, run_seconds  # noqa: E402
from aestimo.personalization.methods.field.field_data import profiles_by_person  # noqa: E402
from aestimo.personalization import export_shared, generic_models  # noqa: E402
from aestimo.personalization.running import runs, selection  # noqa: E402
from aestimo.personalization.running.context import build_context  # noqa: E402
from aestimo.personalization.registry import method_class  # noqa: E402
from aestimo.personalization.running.cluster import shared_out  # noqa: E402
from aestimo.personalization.running.jobs import prepare, run_batched, run_jobs  # noqa: E402

log = logging.getLogger(__name__)


def _params(params: dict[str, Any]) -> config.PersonalizeParams:
    p = config.parse("personalize", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    if p.torch_device.type != "cpu" and p.workers > 1:  # one process drives the accelerator, batched over people
        log.info("personalization on %s: runs in the main process (workers: %d ignored)", p.torch_device, p.workers)
        p = p.model_copy(update={"workers": 1})
    return p


def plan_personalization(
    fewshot_splits: pl.DataFrame,
    ratings: pl.DataFrame,
    generic_splits: pl.DataFrame,
    params: dict[str, Any],
) -> pl.DataFrame:
    """Who is personalized, for which k and repeats (stops on an unknown person or on leakage)."""
    p = _params(params)
    return runs.plan(fewshot_splits, ratings, generic_splits, p.people, p.ks, p.repeats, p.max_people_per_source)


def choose_settings(
    ratings: pl.DataFrame,
    test_people: pl.DataFrame,
    generic_splits: pl.DataFrame,
    expert_predictions: pl.DataFrame,
    image_cache: TensorBundle,
    backbone_features: TensorBundle,
    theta0: TensorBundle,
    task_vectors: TensorBundle,
    params: dict[str, Any],
) -> pl.DataFrame:
    """Each ``selection.grids`` setting (instant's L2 pull, ...), chosen on validation people (no
    expert learned from them, not test people): mean SROCC over them per value, the chosen one marked."""
    p = _params(params)
    sel = p.selection
    ks = sel.ks or p.ks or [10, 100]
    splits = selection.validation_splits(ratings, test_people, generic_splits, ks, sel.repeats, sel.min_query, sel.seed)
    if splits.height == 0:
        log.warning(
            "no validation people to choose settings on (raters no expert learned from, not test people, with "
            ">= %d + %d ratings): methods keep the values their parameters give (or their defaults)", min(ks), sel.min_query,
        )
        return pl.DataFrame(schema=selection.SELECTION_SCHEMA)
    val_plan = splits.select(*runs.RUN, "seed").unique().sort(*runs.RUN)
    ctx = build_context(expert_predictions, image_cache, backbone_features, theta0, task_vectors, p.torch_device, p.precision)
    ctx.workers = p.workers
    data = runs.run_data(val_plan, splits, ratings, expert_predictions, image_cache.meta["image_ids"])
    configured = p.configured_methods(ctx.experts)
    tables = []
    with shared_out(ctx):  # θ0 and τ reach the workers once for every grid
        for name, grid in sel.grids.items():
            cls = method_class(name)
            entry = next((m for m in configured if isinstance(m.method, cls)), None)
            base = entry.method.options if entry is not None else cls.Options()
            for option, values in grid.items():
                _, t = selection.choose(values, lambda v: cls(base.model_copy(update={option: v})), data, ctx)
                tables.append(t.with_columns(pl.lit(name).alias("method"), pl.lit(option).alias("option")))
    return pl.concat(tables).select(list(selection.SELECTION_SCHEMA)) if tables else pl.DataFrame(schema=selection.SELECTION_SCHEMA)


def personalize_people(
    plan: pl.DataFrame,
    fewshot_splits: pl.DataFrame,
    ratings: pl.DataFrame,
    expert_predictions: pl.DataFrame,
    world_utilities: pl.DataFrame,
    image_cache: TensorBundle,
    backbone_features: TensorBundle,
    theta0: TensorBundle,
    task_vectors: TensorBundle,
    chosen_settings: pl.DataFrame,
    user_profiles: pl.DataFrame,
    params: dict[str, Any],
    *generic: TensorBundle,
) -> tuple[dict[str, TensorBundle], pl.DataFrame, pl.DataFrame, TensorBundle, pl.DataFrame]:
    """Every configured method on every planned person × k × repeat: each person's fitted states,
    SROCC / PLCC on the query images, and the time spent (with the settings chosen on validation
    people, where the parameters do not set them); and what the methods computed once for everyone
    (instant's per-image features), which later stages reuse instead of computing it again; and the
    deployed method's states of everyone as one table. ``generic``: the trained generic models of the
    methods that declare one, in :func:`aestimo.personalization.generic_models`'s order."""
    p = _params(params)
    ctx = build_context(expert_predictions, image_cache, backbone_features, theta0, task_vectors, p.torch_device, p.precision)
    ctx.workers = 1 if p.batched else p.workers
    ctx.artifacts = dict(zip(generic_models(), generic, strict=True))
    ctx.profiles = profiles_by_person(user_profiles)
    experts = ctx.experts
    data = runs.run_data(plan, fewshot_splits, ratings, expert_predictions, image_cache.meta["image_ids"], world_utilities)
    jobs = runs.build_jobs(p.configured_methods(experts, selection.chosen_settings(chosen_settings)), data, set(ctx.profiles))
    log.info("personalizing: %d runs (%d methods) on %d worker(s)", len(jobs), len(p.methods), 1 if p.batched else p.workers)
    with shared_out(ctx):  # θ0 and τ reach the workers once, for instant's features and the runs
        prepared = prepare(ctx, jobs)
        rows = runs.MetricRows(jobs, data)  # filled as results come in, while the workers still run
        results = run_batched(ctx, jobs) if p.batched else run_jobs(ctx, jobs, workers=p.workers, on_result=rows)
    meta = {"sources": task_vectors.meta["sources"], "names": task_vectors.meta["names"], "deploy_method": p.deploy_method}
    states, metrics_table, timings = runs.collect(jobs, results, data, meta, prepared, rows)
    timings = timings.with_columns(pl.lit(1 if p.batched else p.workers).alias("workers"))
    return states, metrics_table, timings, export_shared(ctx), runs.coefficients_table(states, p.deploy_method)


def _ceilings(p: config.PersonalizeParams) -> tuple[str, ...]:
    """The configured rows that read hidden or query information (``Method.ceiling``)."""
    return tuple(m.name for m in p.configured_methods([]) if m.method.ceiling)


def compare_methods(personalization_metrics: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """The deployed method paired with every other method over people (ceilings left out)."""
    p = config.parse("personalize", params)
    return people.against_all(personalization_metrics, p.deploy_method, _ceilings(p), p.bootstrap.seed, p.bootstrap.resamples)


def compare_with_reference(personalization_metrics: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """Every method paired over people with the reference every method must beat (the zero-shot
    ensemble by default; ceilings and single experts left out)."""
    p = config.parse("personalize", params)
    if p.reference_method is None:  # no configured entry is a reference (Method.reference), none named
        return pl.DataFrame(schema=people.COMPARISON_SCHEMA)
    table = people.against_reference(personalization_metrics, p.reference_method, _ceilings(p), p.bootstrap.seed, p.bootstrap.resamples)
    return table.filter(main_methods(p.detail_rows(table["method"].unique().to_list())))


def summarize(personalization_metrics: pl.DataFrame, params: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The summary over people per method × k, overall and per source (aestimo.evaluation.people),
    with a ``ceiling`` column marking the rows that read hidden or query information and a
    ``detail`` column marking the rows a main view leaves out (one per expert, say)."""
    p = config.parse("personalize", params)
    b = p.bootstrap
    ceilings = list(_ceilings(p))
    details = p.detail_rows(personalization_metrics["method"].unique().to_list())
    return tuple(
        people.summarize(personalization_metrics, by_source, b.seed, b.resamples)
        .with_columns(pl.col("method").is_in(ceilings).alias("ceiling"), pl.col("method").is_in(details).alias("detail"))
        for by_source in (False, True)
    )


def plot_summary(summary: pl.DataFrame) -> plt.Figure:
    """Mean SROCC over people with its 95 % bootstrap interval per method, one group of bars per k
    (single experts omitted)."""
    s = summary.filter(main_methods(detail_rows(summary)))
    ks = sorted(s["k"].unique().to_list())
    methods = s.filter(pl.col("k") == ks[0]).sort("srocc_mean")["method"].to_list()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(methods) * len(ks) + 1.5))
    h = 0.8 / len(ks)
    for j, k in enumerate(ks):
        t = s.filter(pl.col("k") == k)
        vals = {r["method"]: r for r in t.iter_rows(named=True)}
        y = np.arange(len(methods)) + j * h
        ax.barh(y, [vals.get(m, {}).get("srocc_mean", np.nan) for m in methods], height=h,
                xerr=np.array([_ci_arms(vals.get(m)) for m in methods]).T, label=f"k = {k}")
    ax.set_yticks(np.arange(len(methods)) + h * (len(ks) - 1) / 2, methods)
    ax.set_xlabel("mean SROCC over people (95 % bootstrap interval over people)")
    ax.set_title("few-shot personalization")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_gains(personalization_metrics: pl.DataFrame, params: dict[str, Any]) -> plt.Figure:
    """Each person's gain in SROCC of the deployed method over the reference (``reference_method``; repeats
    averaged first), one bar per person, sorted, one panel per k (as the reference paper's Figure 1)."""
    p = config.parse("personalize", params)
    return _gains_figure(personalization_metrics, p.deploy_method, p.reference_method)


def plot_best_gains(personalization_vs_reference: pl.DataFrame, personalization_metrics: pl.DataFrame,
                    params: dict[str, Any]) -> plt.Figure:
    """The same per-person gains for the best method: the largest mean gain over the reference at the
    largest k among the methods run on every person there (a sampled method is not the best on a few)."""
    p = config.parse("personalize", params)
    best = best_method(personalization_vs_reference, p.deploy_method)
    return _gains_figure(personalization_metrics, best, p.reference_method)


def _gains_figure(metrics: pl.DataFrame, method: str, reference: str | None) -> plt.Figure:
    if reference is None:
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.text(0.5, 0.5, "no reference method configured", ha="center", va="center")
        ax.set_axis_off()
        return fig
    gains = people.gains(metrics, method, reference)
    ks = sorted(gains["k"].unique().to_list()) or [0]
    fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 3.2), squeeze=False)
    for ax, k in zip(axes[0], ks):
        g = gains.filter(pl.col("k") == k).sort("gain")
        colors = ["tab:green" if v > 0 else "tab:red" for v in g["gain"]]
        ax.bar(np.arange(g.height), g["gain"].to_numpy(), color=colors, width=0.9)
        ax.axhline(0, color="black", lw=0.8)
        wins = int((g["gain"] > 0).sum())
        ax.set_title(f"k = {k}: {wins} of {g.height} people gain")
        ax.set_xlabel("people (sorted by gain)")
        ax.set_xticks([])
    axes[0][0].set_ylabel(f"SROCC gain of {method}\nover {reference.replace('_', ' ')}")
    fig.tight_layout()
    return fig


def plot_cost(summary: pl.DataFrame, timings: pl.DataFrame, params: dict[str, Any]) -> plt.Figure:
    """Mean SROCC over people against seconds per person (one fit, shared work shared out; log
    scale), per k; ceilings and single experts left out. Seconds are this machine's."""
    p = config.parse("personalize", params)
    ceilings = list(_ceilings(p))
    cost = run_seconds(timings).rename({"seconds_per_run": "seconds_per_person"})
    s = summary.filter(main_methods(detail_rows(summary)) & ~pl.col("method").is_in(ceilings)).join(cost, on=["method", "k"], how="left")
    ks = sorted(s["k"].unique().to_list()) or [0]
    fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks):
        t = s.filter(pl.col("k") == k)
        x = np.maximum(t["seconds_per_person"].fill_null(0).to_numpy(), 1e-4)  # nothing learned: drawn at 0.1 ms
        ax.scatter(x, t["srocc_mean"].to_numpy())
        for xi, yi, name in zip(x, t["srocc_mean"].to_numpy(), t["method"].to_list()):
            ax.annotate(name, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.margins(x=0.15)  # room for the labels of the right-most points
        ax.set_title(f"k = {k}")
        ax.set_xlabel("seconds per person (this machine)")
    axes[0][0].set_ylabel("mean SROCC over people")
    fig.tight_layout()
    return fig


def _ci_arms(row: dict | None) -> tuple[float, float]:
    """Error-bar arms (below, above the mean) of a summary row's interval; zero where there is none."""
    if not row or row.get("srocc_ci_low") is None or np.isnan(row["srocc_ci_low"]):
        return 0.0, 0.0
    return row["srocc_mean"] - row["srocc_ci_low"], row["srocc_ci_high"] - row["srocc_mean"]
