"""Nodes of the ``reporting`` pipeline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from aestimo import config
from aestimo.evaluation.browser import BrowserUnavailable, check_report
from aestimo.evaluation.report import (
    best_method,
    build_html,
    detail_rows,
    expert_matrix,
    long_tail_section,
    main_methods,
    method_comparison_section,
    table_html,
    versus_reference_section,
)

log = logging.getLogger(__name__)


def build_report(
    ingest_counts: pl.DataFrame,
    world_statistics: pl.DataFrame,
    expert_metrics: pl.DataFrame,
    task_vector_similarity: pl.DataFrame,
    personalization_summary: pl.DataFrame,
    personalization_summary_by_source: pl.DataFrame,
    personalization_comparisons: pl.DataFrame,
    personalization_vs_reference: pl.DataFrame,
    personalization_timings: pl.DataFrame,
    chosen_settings: pl.DataFrame,
    long_tail_metrics: pl.DataFrame,
    long_tail_ablation: pl.DataFrame,
    apds_people: pl.DataFrame,
    self_training_summary: pl.DataFrame,
    self_training_comparisons: pl.DataFrame,
    personalize_params: dict[str, Any],
) -> str:
    """The run's HTML report (plots are the PNGs written beside it, under 08_reporting)."""
    p = config.parse("personalize", personalize_params)
    hidden = detail_rows(personalization_summary)
    # the detail column says which rows the main views leave out; it is bookkeeping, not a figure to show
    personalization_summary = personalization_summary.drop("detail", strict=False)
    personalization_summary_by_source = personalization_summary_by_source.drop("detail", strict=False)
    main = personalization_summary.filter(main_methods(hidden))
    best = best_method(personalization_vs_reference, p.deploy_method)  # the one personalization/best_gains.png draws
    sections = [
        (
            "Personalization",
            "<p>The unit is the person: each person's repeats are averaged first. Mean SROCC over "
            "held-out people with a 95 % bootstrap interval over people (srocc_std: std over repeats "
            "of the people-averaged SROCC), on each person's query images; <em>people</em> says how many "
            "people a row has (a method run on a sample has fewer). Zero-shot ensemble = mean of the "
            "experts. Ceilings read what no method may: noise_ceiling the person's noise-free utility "
            "(synthetic world only), mixing_ceiling the best mix of the experts' outputs fitted on the "
            "query's ratings.</p>"
            + table_html(main)
            + "<img src='personalization/summary.png' alt='summary plot'>"
            + f"<h3>Who gains: {p.deploy_method} over {(p.reference_method or 'the reference').replace('_', ' ')}, person by person</h3>"
            + "<img src='personalization/gains.png' alt='per-person gains'>"
            + f"<h3>{p.deploy_method} against each other method, on the same runs</h3>"
            "<p>Paired over people (repeats averaged first): mean SROCC difference with its bootstrap "
            "interval, wins / losses / ties over people, and a two-sided Wilcoxon signed-rank p-value "
            "over people. A small p says the ordering is more than chance.</p>"
            + table_html(personalization_comparisons.filter(main_methods(hidden, "versus")))
            + "<h3>Per source</h3>"
            + table_html(personalization_summary_by_source.filter(main_methods(hidden)))
            + "<h3>Every method, single experts included</h3>"
            + table_html(personalization_summary)
            + "<h3>Time spent</h3>"
            + table_html(personalization_timings)
            + "<h3>Settings chosen on validation people</h3><p>Instant's L2 pull and the output mix's, "
            "chosen on raters no expert learned from who are not test people, on their own query images; "
            "test people are never read. Mean SROCC over validation people per value (the chosen one "
            "marked); empty when there are none.</p>"
            + table_html(chosen_settings),
        ),
        (
            "Methods compared",
            method_comparison_section(
                main, personalization_timings.filter(main_methods(hidden)),
                {title: personalization_summary.filter(pl.col("method").is_in(rows))
                 for title, rows in p.ablations(personalization_summary["method"].unique(maintain_order=True).to_list()).items()},
                best_gains_shown_above=best if best == p.deploy_method else None,
            )
            + versus_reference_section(personalization_vs_reference, p.reference_method),
        ),
        (
            "The long tail (ELTA): experts and people",
            long_tail_section(long_tail_metrics, long_tail_ablation, apds_people, self_training_summary, self_training_comparisons),
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


def check_report_in_browser(report: str, personalization_summary: pl.DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    """The written report rendered in headless Chromium: every image loaded and shown once, a summary
    row for every method, no broken link, nothing wider than the window; a full-page screenshot beside
    it (``report.png``). A report that fails raises :class:`ReportCheckError`. Where no browser can be
    started (Chromium or its driver not installed, or Chromium failing to start) the run goes on and
    the result says ``checked: false`` with what is missing and how to install it."""
    html = Path(params["report_path"])
    if not html.exists() or html.read_text() != report:
        raise RuntimeError(f"{html} is not the report this run wrote; set reporting.report_path to the catalog's report file")
    shown = personalization_summary.filter(main_methods(detail_rows(personalization_summary)))["method"].unique().to_list()
    try:
        facts = check_report(html, shown, html.with_name("report.png"))
    except BrowserUnavailable as absent:
        log.warning("report not checked in a browser: %s", absent)
        return {"checked": False, "reason": str(absent)}
    return {"checked": True, **{k: (str(v) if isinstance(v, Path) else v) for k, v in facts.items()}}
