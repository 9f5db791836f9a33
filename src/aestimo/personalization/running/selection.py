"""Choosing a method's setting on validation people, never on test people.

Validation people are raters that **no expert learned from** (every image they
rated is a ``personal`` image, outside every expert's splits) and that are
**not test people**, with enough ratings for a few-shot split. On the default
world they are the AADB-like raters with too few ratings to be held out as
test people (k = 10 only). A setting (instant's L2 pull, the output mix's) is chosen by the
mean SROCC over those people (repeats averaged first) on their own query
images; test people's ratings are never read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from aestimo.data.splits import fewshot_splits
from aestimo.evaluation import people as over_people
from aestimo.personalization.running import runs
from aestimo.personalization.running.jobs import Job, prepare, run_jobs
from aestimo.personalization.registry import Context, Method

log = logging.getLogger(__name__)

SELECTION_SCHEMA = {"method": pl.String, "option": pl.String, "value": pl.Float64, "k": pl.Int64, "people": pl.Int64, "srocc_mean": pl.Float64, "chosen": pl.Boolean}


def validation_people(ratings: pl.DataFrame, test_people: pl.DataFrame, generic_splits: pl.DataFrame, min_ratings: int) -> pl.DataFrame:
    """Raters with ≥ ``min_ratings`` ratings, none of whose images is in an expert's split, who are not test people."""
    in_expert_splits = generic_splits.filter(pl.col("split") != "personal").select("image_id")
    touched = ratings.join(in_expert_splits, on="image_id", how="semi").select("source", "rater_id").unique()
    return (
        ratings.filter(pl.col("rater_id").is_not_null())
        .group_by("source", "rater_id").agg(pl.len().alias("n_ratings"))
        .join(touched, on=["source", "rater_id"], how="anti")
        .join(test_people.select("source", "rater_id"), on=["source", "rater_id"], how="anti")
        .filter(pl.col("n_ratings") >= min_ratings)
        .sort("source", "rater_id")
    )


def validation_splits(
    ratings: pl.DataFrame, test_people: pl.DataFrame, generic_splits: pl.DataFrame,
    ks: Sequence[int], repeats: int, min_query: int, seed: int,
) -> pl.DataFrame:
    """Few-shot splits of the validation people (the test people's protocol, their own seeds)."""
    val = validation_people(ratings, test_people, generic_splits, min(ks) + min_query)
    splits, _ = fewshot_splits(ratings, val, ks=list(ks), repeats=repeats, min_query=min_query, seed=seed)
    return splits


def choose(
    values: Sequence[float],
    make: Callable[[float], Method],
    data: Sequence[runs.RunData],
    ctx: Context,
) -> tuple[float, pl.DataFrame]:
    """The value whose method scores the highest mean SROCC over validation people (per k, then
    averaged over ks; on a tie the larger value, i.e. the more conservative pull), and the table."""
    if not data:
        raise ValueError("no validation people: nothing to choose the setting on (see aestimo.personalization.running.selection)")
    methods = {v: make(v) for v in values}
    jobs = [Job(f"{v:g}", methods[v], r.support, r.query) for v in values for r in data]
    prepare(ctx, jobs)
    results = run_jobs(ctx, jobs, workers=ctx.workers, desc="choose on validation people")
    y_of = {(r.support.source, r.support.rater_id, r.support.k, r.support.repeat): r.y_query for r in data}
    rows = []
    for job, res in zip(jobs, results):
        s = job.support
        rows.append(runs.metric_row(s.source, s.rater_id, job.name, s.k, s.repeat, y_of[(s.source, s.rater_id, s.k, s.repeat)], res.scores))
    per = over_people.per_person(pl.DataFrame(rows, schema=runs.METRIC_SCHEMA))
    table = per.group_by("method", "k").agg(pl.len().alias("people"), pl.col("srocc").mean().alias("srocc_mean"))
    score = {v: float(table.filter(pl.col("method") == f"{v:g}")["srocc_mean"].mean()) for v in values}
    best = max(sorted(values, reverse=True), key=lambda v: np.nan_to_num(score[v], nan=-np.inf))
    log.info("chosen on %d validation people: %g (mean SROCC %.3f)", per.select("source", "rater_id").n_unique(), best, score[best])
    table = table.with_columns(
        pl.col("method").cast(pl.Float64).alias("value"), (pl.col("method") == f"{best:g}").alias("chosen")
    ).select(list(SELECTION_SCHEMA)[2:]).sort("k", "value")
    return best, table


def chosen_settings(table: pl.DataFrame) -> dict[str, dict[str, float]]:
    """``{registry method: {option: value}}`` from a selection table's chosen rows."""
    out: dict[str, dict[str, float]] = {}
    for row in table.filter(pl.col("chosen")).unique(["method", "option"]).iter_rows(named=True):
        out.setdefault(row["method"], {})[row["option"]] = row["value"]
    return out
