"""The HTML report: tables render, the expert matrix pivots, the protocol is named."""

import polars as pl

from aestimo.pipelines.reporting.nodes import build_report
from aestimo.evaluation.report import expert_matrix, table_html


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
        {"method": ["layerwise_rank", "zero_shot_ensemble", "zero_shot_ava"], "k": [10, 10, 10], "srocc_mean": [0.5, 0.4, 0.3]}
    )
    html = build_report(
        pl.DataFrame({"source": ["ava"], "images": [3]}),
        pl.DataFrame(),
        pl.DataFrame({"expert": ["ava"], "source": ["ava"], "srocc": [0.6]}),
        pl.DataFrame({"source_a": ["ava"], "source_b": ["ava"], "cosine": [1.0]}),
        summary,
        summary.with_columns(pl.lit("flickr_aes").alias("source")),
        pl.DataFrame({"method": ["layerwise_rank"] * 2, "versus": ["layeragnostic_rank", "zero_shot_ava"], "k": [10, 10], "wilcoxon_p": [0.04, 0.5]}),
        pl.DataFrame({"method": ["layerwise_rank"], "seconds": [1.0]}),
        pl.DataFrame({"value": [0.01, 0.1], "k": [10, 10], "people": [5, 5], "srocc_mean": [0.3, 0.35], "chosen": [False, True]}),
        {"methods": {"layerwise_rank": {"method": "task_vectors"}}, "protocol": "tiny test protocol"},
    )
    assert "tiny test protocol" in html
    for title in ("Personalization", "Experts", "Task vectors", "Data"):
        assert f"<h2>{title}" in html
    assert html.count("zero_shot_ava") == 1  # single experts only in the full table
    assert "layeragnostic_rank" in html and "Wilcoxon" in html  # the paired comparison is shown
    assert "validation people" in html and "0.350" in html  # the L2 choice and its figures
