"""The HTML report: tables render (each in its own scrolling box, a dash for a missing value), the
expert matrix pivots, the protocol is named, no plot is shown twice."""

import re

import polars as pl

from aestimo.evaluation.report import (
    MISSING,
    comparison_table,
    expert_matrix,
    method_comparison_section,
    table_html,
    versus_reference_section,
)
from aestimo.pipelines.reporting.nodes import build_report
from tests.pipelines.reporting.report_inputs import SUMMARY, report_inputs


def test_table_html_formats_and_escapes():
    out = table_html(pl.DataFrame({"method": ["<x>"], "srocc": [0.12345]}))
    assert "&lt;x&gt;" in out and "0.123" in out and "0.12345" not in out
    assert "(empty)" in table_html(pl.DataFrame())


def test_expert_matrix_has_experts_as_rows_and_drops_the_constant():
    t = pl.DataFrame(
        {"expert": ["a", "a", "b", "b", "constant"], "source": ["a", "b", "a", "b", "a"], "srocc": [0.9, 0.2, 0.3, 0.8, None]}
    )
    m = expert_matrix(t)
    assert m.columns == ["expert", "a", "b"] and m["expert"].to_list() == ["a", "b"]
    assert m.filter(pl.col("expert") == "b")["b"].item() == 0.8


def test_report_names_the_protocol_and_every_section():
    summary = pl.DataFrame(
        {"method": ["layerwise_rank", "zero_shot_ensemble", "zero_shot_ava"], "k": [10, 10, 10], "people": [5, 5, 5],
         "srocc_mean": [0.5, 0.4, 0.3], "srocc_ci_low": [0.4, 0.3, 0.2], "srocc_ci_high": [0.6, 0.5, 0.4]}
    )
    html = build_report(
        pl.DataFrame({"source": ["ava"], "images": [3]}),
        pl.DataFrame(),
        pl.DataFrame({"expert": ["ava"], "source": ["ava"], "srocc": [0.6]}),
        pl.DataFrame({"source_a": ["ava"], "source_b": ["ava"], "cosine": [1.0]}),
        summary,
        summary.with_columns(pl.lit("flickr_aes").alias("source")),
        pl.DataFrame({"method": ["layerwise_rank"] * 2, "versus": ["layeragnostic_rank", "zero_shot_ava"], "k": [10, 10], "wilcoxon_p": [0.04, 0.5]}),
        pl.DataFrame({"method": ["layerwise_rank", "other"], "versus": ["zero_shot_ensemble"] * 2, "k": [10, 10], "people": [5, 5],
                      "mean_diff": [0.1, 0.01], "diff_ci_low": [0.05, -0.02], "diff_ci_high": [0.15, 0.04], "wins": [4, 3],
                      "losses": [1, 2], "ties": [0, 0], "wilcoxon_p": [0.06, 0.8]}),
        pl.DataFrame({"method": ["layerwise_rank"], "k": [10], "runs": [5], "seconds": [1.0], "seconds_per_run": [0.2]}),
        pl.DataFrame({"value": [0.01, 0.1], "k": [10, 10], "people": [5, 5], "srocc_mean": [0.3, 0.35], "chosen": [False, True]}),
        pl.DataFrame({
            "expert": ["ava"] * 8, "variant": ["plain"] * 4 + ["self_trained"] * 4, "segment": ["all", "low", "middle", "high"] * 2,
            "n": [10, 2, 6, 2] * 2, "mae": [0.5, 1.1, 0.2, 1.3, 0.5, 0.9, 0.25, 1.0], "plcc": [0.6] * 8, "srocc": [0.6] * 8,
        }),
        pl.DataFrame({"expert": ["ava"], "variant": ["round: tfa+flsa+apds"], "tfa": [True], "flsa": [True], "apds": [True]}),
        pl.DataFrame({"beta": [5.0], "t": [0.3], "mae": [0.4], "kept_fraction": [0.2], "chosen": [True]}),
        pl.DataFrame({"method": ["instant", "instant+self_training"], "k": [10, 10], "people": [7, 7], "srocc_mean": [0.3, 0.31],
                      "mae_low": [1.0, 0.9]}),
        pl.DataFrame({"method": ["instant+self_training"], "versus": ["instant"], "k": [10], "mean_diff": [0.01]}),
        {"methods": {"layerwise_rank": {"method": "task_vectors"}, "zero_shot_ensemble": {"method": "zero_shot_ensemble"}},
         "protocol": "tiny test protocol"},
    )
    assert "tiny test protocol" in html
    for title in ("Personalization", "Methods compared", "The long tail", "Experts", "Task vectors", "Data"):
        assert f"<h2>{title}" in html
    assert html.count("zero_shot_ava") == 1  # single experts only in the full table
    assert "layeragnostic_rank" in html and "Wilcoxon" in html  # the paired comparison is shown
    assert "validation people" in html and "0.350" in html  # the L2 choice and its figures
    assert "<b>layerwise_rank</b> beats zero_shot_ensemble at k = 10" in html  # said plainly, from its interval
    assert "<b>other</b> does not clearly beat zero_shot_ensemble" in html
    assert "round: tfa+flsa+apds" in html and "instant+self_training" in html  # the ablation and the people's rows
    assert "self_training/scatter.png" in html and "self_training/apds_heatmap.png" in html
    assert "1.100" in html and "0.900" in html  # the low segment's MAE, plain and self-trained, side by side


def test_missing_values_read_as_a_dash_in_a_scrolling_box():
    t = pl.DataFrame({"method": ["one_repeat", None], "srocc_std": [float("nan"), 0.01], "people": [None, 4],
                      "seconds": [None, 2.0]})
    out = table_html(t)
    assert out.startswith("<div class='scroll'><table>") and out.count("<table>") == 1
    assert MISSING == "\u2013" and out.count(f"<td>{MISSING}</td>") == 4
    assert "nan" not in out.lower() and "None" not in out and "<td>0.010</td>" in out and "<td>4</td>" in out
    assert "<td>2</td>" in table_html(t, float_spec=".3g")


def test_a_method_without_a_figure_at_some_k_reads_a_dash():
    summary = SUMMARY.filter(~((pl.col("method") == "layerwise_rank") & (pl.col("k") == 100)))
    row = comparison_table(summary.with_columns(
        pl.when(pl.col("method") == "zero_shot_ensemble").then(float("nan")).otherwise(pl.col("srocc_mean")).alias("srocc_mean")
    ))
    layerwise = row.filter(pl.col("method") == "layerwise_rank").row(0, named=True)
    assert layerwise["SROCC [95 % CI], k=10"] == "0.500 [0.450, 0.550]" and layerwise["SROCC [95 % CI], k=100"] is None
    assert set(row.filter(pl.col("method") == "zero_shot_ensemble")["SROCC [95 % CI], k=10"]) == {MISSING}
    timings = pl.DataFrame({"method": ["a", "b"], "k": [10, 100], "seconds_per_run": [0.01234, 2.0]})
    seconds = method_comparison_section(summary, timings).split("Seconds per person")[1]
    assert "<td>0.0123</td>" in seconds and seconds.count(f"<td>{MISSING}</td>") == 2  # a at k=100, b at k=10


def test_a_pairing_without_a_p_value_reads_a_dash():
    t = pl.DataFrame({"method": ["m"], "versus": ["ref"], "k": [10], "people": [3], "mean_diff": [0.0], "diff_ci_low": [0.0],
                      "diff_ci_high": [0.0], "wins": [0], "losses": [0], "ties": [3], "wilcoxon_p": [float("nan")]})
    out = versus_reference_section(t, "ref")
    assert f"Wilcoxon p = {MISSING})" in out and "nan" not in out


def test_every_table_scrolls_in_its_box_and_every_plot_is_shown_once():
    html = build_report(**report_inputs())
    assert html.count("<table>") == html.count("<div class='scroll'><table>") > 5
    sources = re.findall(r"<img src='([^']+)'", html)
    assert len(sources) == len(set(sources)) and "personalization/cost.png" in sources


def test_the_best_methods_gains_are_drawn_once_even_when_it_is_the_deployed_method():
    inputs = report_inputs()
    vs = inputs["personalization_vs_reference"]
    other = vs.with_columns(pl.lit("other").alias("method"), pl.lit(0.2).alias("mean_diff"))
    sampled = vs.with_columns(pl.lit("sampled").alias("method"), pl.lit(0.9).alias("mean_diff"), pl.lit(2).alias("people"))
    inputs["personalization_vs_reference"] = pl.concat([vs, other, sampled], how="vertical_relaxed")  # best on every person: other
    shown = build_report(**inputs)
    assert "<img src='personalization/best_gains.png'" in shown and "<img src='personalization/gains.png'" in shown
    inputs["personalization_vs_reference"] = pl.concat([vs, sampled], how="vertical_relaxed")  # the deployed layerwise_rank is the best
    once = build_report(**inputs)
    assert "best_gains.png" not in once and "<img src='personalization/gains.png'" in once
    assert "The best method is layerwise_rank, the deployed one" in once


def test_the_detail_column_is_bookkeeping_not_shown():
    """The summary's ``detail`` column decides which rows the main views leave out; no table shows it."""
    from tests.pipelines.reporting.report_inputs import report_inputs
    from aestimo.pipelines.reporting.nodes import build_report

    inputs = report_inputs()
    for name in ("personalization_summary", "personalization_summary_by_source"):
        t = inputs[name]
        inputs[name] = t.with_columns(pl.col("method").str.starts_with("zero_shot_a").alias("detail"))
    html = build_report(**inputs)
    assert "<th>detail</th>" not in html
