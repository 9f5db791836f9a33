"""Nodes of the ``reporting`` pipeline."""

from __future__ import annotations

from typing import Any

import polars as pl

from aestimo import config
from aestimo.evaluation.report import build_html, expert_matrix, main_methods, table_html


def build_report(
    ingest_counts: pl.DataFrame,
    world_statistics: pl.DataFrame,
    expert_metrics: pl.DataFrame,
    task_vector_similarity: pl.DataFrame,
    personalization_summary: pl.DataFrame,
    personalization_summary_by_source: pl.DataFrame,
    personalization_comparisons: pl.DataFrame,
    personalization_timings: pl.DataFrame,
    personalize_params: dict[str, Any],
) -> str:
    """The run's HTML report (plots are the PNGs written beside it, under 08_reporting)."""
    p = config.parse("personalize", personalize_params)
    main = personalization_summary.filter(main_methods("method"))
    sections = [
        (
            "Personalization",
            "<p>The unit is the person: each person's repeats are averaged first. Mean SROCC over "
            "held-out people with a 95 % bootstrap interval over people (srocc_std: std over repeats "
            "of the people-averaged SROCC), on each person's query images. Zero-shot ensemble = mean "
            "of the experts; oracle = the person's noise-free utility (a ceiling, synthetic world only).</p>"
            + table_html(main)
            + "<img src='personalization/summary.png' alt='summary plot'>"
            + f"<h3>{p.deploy_method} against each other method, on the same runs</h3>"
            "<p>Paired over people (repeats averaged first): mean SROCC difference with its bootstrap "
            "interval, wins / losses / ties over people, and a two-sided Wilcoxon signed-rank p-value "
            "over people. A small p says the ordering is more than chance.</p>"
            + table_html(personalization_comparisons.filter(main_methods("versus")))
            + "<h3>Per source</h3>"
            + table_html(personalization_summary_by_source.filter(main_methods("method")))
            + "<h3>Every method, single experts included</h3>"
            + table_html(personalization_summary)
            + "<h3>Time spent</h3>"
            + table_html(personalization_timings),
        ),
        (
            "Experts: SROCC of every expert on every source's test split",
            table_html(expert_matrix(expert_metrics))
            + "<img src='experts/expert_srocc_heatmap.png' alt='expert heatmap'>"
            + "<h3>All metrics (and the constant predictor)</h3>"
            + table_html(expert_metrics),
        ),
        (
            "Task vectors",
            "<img src='task_vectors/similarity_heatmap.png' alt='similarity'>"
            "<img src='task_vectors/layer_norms.png' alt='layer norms'>"
            + table_html(task_vector_similarity.pivot(on="source_b", index="source_a", values="cosine")),
        ),
        (
            "Data",
            table_html(ingest_counts) + "<img src='ingest/score_histograms.png' alt='histograms'>"
            + ("<h3>Synthetic world: realism statistics</h3>" + table_html(world_statistics) if world_statistics.height else ""),
        ),
    ]
    return build_html(sections, p.protocol)
