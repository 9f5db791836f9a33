"""From the canonical tables to personalization runs and back to result tables.

* :func:`plan` — who is personalized, at which k and repeats, with the
  leakage guard (no held-out person's image may be in an expert's split);
* :func:`build_jobs` — one job per configured method × person × k × repeat:
  the support set (images, scores, the experts' scores) and the query images;
* :func:`collect` — per-run metrics, each person's fitted states, timings.

No Kedro here; the ``personalize`` pipeline's nodes are thin calls to these.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from aestimo.bundle import TensorBundle
from aestimo.data.scales import SCALES
from aestimo.evaluation import metrics
from aestimo.models.scorer import template_tensor
from aestimo.personalization.running.keys import parse_person_ref, parse_state_key, person_key, split_person_key, state_key
from aestimo.personalization.running.jobs import Job, Result
from aestimo.personalization.registry import Method, Query, Support

log = logging.getLogger(__name__)

RUN = ["source", "rater_id", "k", "repeat"]

METRIC_SCHEMA = {
    "source": pl.String,
    "rater_id": pl.String,
    "method": pl.String,
    "k": pl.Int64,
    "repeat": pl.Int64,
    "srocc": pl.Float64,
    "plcc": pl.Float64,
    "n_query": pl.Int64,
    "mae": pl.Float64,  # on the template scale: a rank-trained method's scale is its own, so read MAE with care
    "mae_low": pl.Float64,  # on the person's low 20 % / middle 60 % / high 20 % of query ratings
    "mae_middle": pl.Float64,
    "mae_high": pl.Float64,
}


@dataclass(frozen=True)
class ConfiguredMethod:
    """A method as configured: its name in the summary, the method built from its options, its ks."""

    name: str
    method: Method
    ks: list[int] | None = None  # None: every k of the plan
    sample: Sample | None = None  # None: every planned person and repeat


@dataclass(frozen=True)
class Sample:
    """A method run on part of the plan only (a slow one, within the budget): the first
    ``people_per_source`` people of each source (in plan order; None = all) and their first ``repeats`` repeats."""

    people_per_source: int | None
    repeats: int

    def people(self, runs: Sequence[RunData]) -> set[tuple[str, str]]:
        chosen: dict[str, list[str]] = {}
        for r in runs:
            ids = chosen.setdefault(r.support.source, [])
            if r.support.rater_id not in ids and (self.people_per_source is None or len(ids) < self.people_per_source):
                ids.append(r.support.rater_id)
        return {(src, rid) for src, ids in chosen.items() for rid in ids}


def plan(
    fewshot_splits: pl.DataFrame,
    ratings: pl.DataFrame,
    generic_splits: pl.DataFrame,
    people: Sequence[str] | None = None,
    ks: Sequence[int] | None = None,
    repeats: int | None = None,
    max_people_per_source: int | None = None,
) -> pl.DataFrame:
    """Who is personalized, for which k and repeats. Stops on an unknown person or on a
    person whose ratings touch expert training data (leakage guard)."""
    out = fewshot_splits.select(*RUN, "seed").unique()
    if people is not None:
        wanted = []
        for ref in people:
            src, rid = parse_person_ref(ref)
            hit = ratings.filter((pl.col("rater_id") == rid) & ((pl.col("source") == src) if src else pl.lit(True)))
            if hit.height == 0:
                raise ValueError(f"parameter 'personalize.people': unknown person '{ref}' (no ratings with that id)")
            for s in hit["source"].unique().to_list():
                wanted.append((s, rid))
        wanted_df = pl.DataFrame(wanted, schema={"source": pl.String, "rater_id": pl.String}, orient="row")
        missing = wanted_df.join(out, on=["source", "rater_id"], how="anti")
        if missing.height:
            raise ValueError(
                f"parameter 'personalize.people': {missing.rows()[:5]} are not held-out people with few-shot splits "
                "(they are expert-training raters, or have too few ratings): personalizing them would leak"
            )
        out = out.join(wanted_df, on=["source", "rater_id"], how="semi")
    touched = (
        ratings.join(out.select("source", "rater_id").unique(), on=["source", "rater_id"], how="semi")
        .join(generic_splits.filter(pl.col("split") != "personal"), on="image_id", how="inner")
    )
    if touched.height:
        bad = touched.select("source", "rater_id", "image_id", "split").head(5).rows()
        raise ValueError(
            f"leakage: {touched['rater_id'].n_unique()} held-out people rated images in expert splits, e.g. {bad}; "
            "rebuild generic_splits (kedro run --pipeline ingest) so their images are 'personal'"
        )
    if ks is not None:
        out = out.filter(pl.col("k").is_in(list(ks)))
    if repeats is not None:
        out = out.filter(pl.col("repeat") < repeats)
    if max_people_per_source is not None:
        keep = (
            out.select("source", "rater_id").unique().sort("source", "rater_id")
            .group_by("source", maintain_order=True).head(max_people_per_source)
        )
        out = out.join(keep, on=["source", "rater_id"], how="semi")
    if out.height == 0:
        raise ValueError("nothing to personalize: no held-out person has few-shot splits for the configured ks/people")
    out = out.sort(*RUN)
    log.info(
        "personalization plan: %d people, ks %s, %d runs per method",
        out.select("source", "rater_id").n_unique(),
        sorted(out["k"].unique().to_list()),
        out.height,
    )
    return out


def person_tables(plan: pl.DataFrame, fewshot_splits: pl.DataFrame, ratings: pl.DataFrame) -> pl.DataFrame:
    """Every planned run's support and query rows with the person's scores (source and template scale)."""
    return (
        fewshot_splits.join(plan.select(*RUN), on=RUN, how="semi")
        .join(ratings.select("source", "rater_id", "image_id", "score", "score_template"), on=["source", "rater_id", "image_id"])
        .sort(*RUN, "role", "image_id")
    )


def expert_names(expert_predictions: pl.DataFrame) -> list[str]:
    return expert_predictions["expert"].unique(maintain_order=True).to_list()


class ExpertScores:
    """Each expert's zero-shot bin probabilities, indexed once, for many lookups by image id."""

    def __init__(self, expert_predictions: pl.DataFrame):
        self.names = expert_names(expert_predictions)
        wide = None
        for e in self.names:
            t = expert_predictions.filter(pl.col("expert") == e).select("image_id", pl.col("probs").alias(e))
            wide = t if wide is None else wide.join(t, on="image_id", how="full", coalesce=True)
        self.pos = {iid: i for i, iid in enumerate(wide["image_id"].to_list())}
        # (n_experts, n_images, n_bins); NaN where an expert lacks an image
        self.probs = np.stack([
            np.stack([np.full(10, np.nan) if p is None else np.asarray(p, dtype=np.float64) for p in wide[e].to_list()])
            for e in self.names
        ])

    def __call__(self, ids: list[str], template: np.ndarray) -> np.ndarray:
        """Each expert's zero-shot score (on ``template``) of ``ids``: ``(n_experts, len(ids))``."""
        missing = [i for i in ids if i not in self.pos]
        if missing:
            raise ValueError(f"expert_predictions lacks {len(missing)} images, e.g. '{missing[0]}'")
        out = self.probs[:, [self.pos[i] for i in ids]] @ template
        if np.isnan(out).any():
            bad = self.names[int(np.where(np.isnan(out).any(axis=1))[0][0])]
            raise ValueError(f"expert_predictions lacks images of these runs for expert '{bad}'")
        return out


@dataclass(frozen=True)
class RunData:
    """One planned person × k × repeat, the same for every method: support, query and the query's ratings."""

    support: Support
    query: Query
    y_query: np.ndarray  # the person's ratings of the query images (source scale): read by the metrics only


def run_data(
    plan: pl.DataFrame,
    fewshot_splits: pl.DataFrame,
    ratings: pl.DataFrame,
    expert_predictions: pl.DataFrame,
    image_ids: list[str],
    world_utilities: pl.DataFrame | None = None,
) -> list[RunData]:
    """Support and query of every planned run (rows of the image cache, scores, the experts' scores)."""
    rows_of = {iid: i for i, iid in enumerate(image_ids)}
    scores_of = ExpertScores(expert_predictions)
    tables = person_tables(plan, fewshot_splits, ratings)
    if world_utilities is not None and world_utilities.height:  # the hidden truth, joined once for every run
        tables = tables.join(world_utilities.select("source", "rater_id", "image_id", "utility"),
                             on=["source", "rater_id", "image_id"], how="left", maintain_order="left")
    else:
        tables = tables.with_columns(pl.lit(None, dtype=pl.Float64).alias("utility"))

    def rows(ids: list[str]) -> torch.Tensor:
        return torch.as_tensor([rows_of[i] for i in ids], dtype=torch.long)

    out = []
    for (source, rater, k, rep), t in tables.group_by(RUN, maintain_order=True):
        sup, qry = t.filter(pl.col("role") == "support"), t.filter(pl.col("role") == "query")
        tmpl = template_tensor(SCALES[source].template).numpy().astype(np.float64)
        sup_ids, qry_ids = sup["image_id"].to_list(), qry["image_id"].to_list()
        q_truth = qry["utility"].to_numpy()
        if not np.isfinite(q_truth.astype(np.float64)).all():
            q_truth = None  # a real person beside the synthetic world's people: no hidden truth
        support = Support(
            source, rater, int(k), int(rep), int(t["seed"][0]), rows(sup_ids),
            torch.tensor(sup["score_template"].to_numpy(), dtype=torch.float32),
            scores_of(sup_ids, tmpl),
        )
        query = Query(source, rows(qry_ids), scores_of(qry_ids, tmpl), q_truth, qry["score_template"].to_numpy())
        out.append(RunData(support, query, qry["score"].to_numpy()))
    return out


def build_jobs(
    methods: Sequence[ConfiguredMethod], runs: Sequence[RunData], profiled: set[tuple[str, str]] | frozenset = frozenset()
) -> list[Job]:
    """Every configured method on every run it applies to (its ks and sample; methods that need the
    hidden truth, ``needs_truth``, only where it exists, i.e. for the synthetic world's people; methods
    that read a profile, ``needs_profile``, only for the people in ``profiled``)."""
    jobs = []
    for m in methods:
        skipped = no_profile = 0
        sampled = m.sample.people(runs) if m.sample is not None else None
        for r in runs:
            if m.ks is not None and r.support.k not in m.ks:
                continue
            if sampled is not None and ((r.support.source, r.support.rater_id) not in sampled or r.support.repeat >= m.sample.repeats):
                continue
            if m.method.needs_truth and r.query.truth is None:
                skipped += 1
                continue
            if m.method.needs_profile and (r.support.source, r.support.rater_id) not in profiled:
                no_profile += 1
                continue
            jobs.append(Job(m.name, m.method, r.support, r.query))
        if skipped:
            log.info("%s: %d runs of people without hidden truth (real data) have no ceiling row", m.name, skipped)
        if no_profile:
            log.info("%s: %d runs of people without a profile (traits, experience) are left out", m.name, no_profile)
    return jobs


def metric_row(source, rater, method, k, rep, y, pred, y_template=None) -> dict:
    """SROCC / PLCC against the person's ratings ``y``; MAE (overall and on the low / middle / high
    segments of the ratings) against ``y_template``, the same ratings on the template scale."""
    row = {
        "source": source, "rater_id": rater, "method": method, "k": int(k), "repeat": int(rep),
        "srocc": metrics.srocc(y, pred), "plcc": metrics.plcc(y, pred), "n_query": len(y),
    }
    if y_template is not None and len(y_template):
        segs = metrics.segment_mae(y_template, pred)
        row |= {"mae": segs["all"], "mae_low": segs["low"], "mae_middle": segs["middle"], "mae_high": segs["high"]}
    return row


class MetricRows:
    """The metric rows of runs as their results come in (``run_jobs(on_result=...)``): computed by the
    main process while the workers still run, instead of after them beside an idle core."""

    def __init__(self, jobs: Sequence[Job], runs: Sequence[RunData]):
        self.jobs = jobs
        self.y_of = {(r.support.source, r.support.rater_id, r.support.k, r.support.repeat): (r.y_query, r.query.ratings) for r in runs}
        self.rows: dict[int, dict] = {}

    def __call__(self, i: int, res: Result) -> None:
        job = self.jobs[i]
        s = job.support
        y, y_template = self.y_of[(s.source, s.rater_id, s.k, s.repeat)]
        self.rows[i] = metric_row(s.source, s.rater_id, job.name, s.k, s.repeat, y, res.scores, y_template)


def collect(
    jobs: Sequence[Job], results: Sequence[Result], runs: Sequence[RunData], meta: dict, prepared: dict[str, float] | None = None,
    rows: MetricRows | None = None,
) -> tuple[dict[str, TensorBundle], pl.DataFrame, pl.DataFrame]:
    """Per-run metrics (SROCC / PLCC on the query), each person's fitted states (one bundle per
    person, with ``meta``), and the time spent per method × source × k: fitting, plus the method's
    shared preparation (``prepared``, seconds per method) shared out over its runs; and, apart, scoring
    the query images (``score_seconds``: what the protocol's evaluation costs, not the method).
    ``rows``: the metric rows computed as the results came in (the others are computed here)."""
    rows = rows if rows is not None else MetricRows(jobs, runs)
    states, seconds = {}, {}
    for i, (job, res) in enumerate(zip(jobs, results)):
        s = job.support
        if i not in rows.rows:
            rows(i, res)
        person = states.setdefault(person_key(s.source, s.rater_id), {})
        for tensor, value in res.state.items():
            person[state_key(job.name, s.k, s.repeat, tensor)] = value
        seconds.setdefault((job.name, s.source, s.k), []).append((res.seconds, res.score_seconds))
    prepared = prepared or {}
    runs_of = {m: sum(len(v) for (name, _, _), v in seconds.items() if name == m) for m in prepared}
    timings = pl.DataFrame(
        [
            {
                "method": m, "source": src, "k": k, "runs": len(v), "seconds": float(sum(f for f, _ in v)),
                "prepare_seconds": prepared.get(m, 0.0) * len(v) / runs_of[m] if m in prepared else 0.0,
                "score_seconds": float(sum(q for _, q in v)),
            }
            for (m, src, k), v in seconds.items()
        ],
        schema={"method": pl.String, "source": pl.String, "k": pl.Int64, "runs": pl.Int64, "seconds": pl.Float64,
                "prepare_seconds": pl.Float64, "score_seconds": pl.Float64},
    ).with_columns(((pl.col("seconds") + pl.col("prepare_seconds")) / pl.col("runs")).alias("seconds_per_run"))
    bundles = {}
    for key, tensors in states.items():
        if tensors:
            source, rater = split_person_key(key)
            bundles[key] = TensorBundle(tensors, {**meta, "source": source, "rater_id": rater})
    return bundles, pl.DataFrame([rows.rows[i] for i in range(len(jobs))], schema=METRIC_SCHEMA), timings


COEFFICIENT_SCHEMA = {"source": pl.String, "rater_id": pl.String, "method": pl.String, "k": pl.Int64, "repeat": pl.Int64,
                      "tensor": pl.String, "shape": pl.List(pl.Int64), "values": pl.List(pl.Float32)}


def coefficients_table(states: dict[str, TensorBundle], method: str | None) -> pl.DataFrame:
    """One method's fitted states of every person as one table: a row per person × k × repeat ×
    tensor, the tensor flattened (``values``, float32) with its ``shape``. At a million people one
    table (partitioned by source where it is large) is one file to write, list and read, where
    ``user_coefficients`` is a million."""
    rows = []
    for key in sorted(states):
        source, rater = split_person_key(key)
        for name, value in states[key].tensors.items():
            m, k, repeat, tensor = parse_state_key(name)
            if m == method:
                rows.append({"source": source, "rater_id": rater, "method": m, "k": k, "repeat": repeat, "tensor": tensor,
                             "shape": list(value.shape), "values": value.detach().reshape(-1).float().tolist()})
    return pl.DataFrame(rows, schema=COEFFICIENT_SCHEMA)
