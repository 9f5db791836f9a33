"""The report's comparison table and best-method sentence mark ceilings by the summary's ``ceiling``
column (the registry's Method.ceiling), whatever a ceiling's entry is called."""

import polars as pl

from aestimo.evaluation.report import best_methods_sentence, comparison_table


def _summary(ceiling_column: bool) -> pl.DataFrame:
    t = pl.DataFrame({
        "method": ["instant", "peek_at_query", "mixing_ceiling"],
        "k": [10, 10, 10],
        "people": [8, 8, 8],
        "srocc_mean": [0.4, 0.9, 0.8],
        "srocc_ci_low": [0.3, 0.85, 0.7],
        "srocc_ci_high": [0.5, 0.95, 0.9],
    })
    return t.with_columns(pl.Series("ceiling", [False, True, True])) if ceiling_column else t


def test_a_ceiling_is_marked_by_the_column_not_by_its_name():
    table = comparison_table(_summary(True))
    assert table["method"].to_list() == ["instant", "peek_at_query", "mixing_ceiling"]  # methods first, then ceilings
    assert table["role"].to_list() == ["", "ceiling", "ceiling"]
    assert "<strong>instant</strong>" in best_methods_sentence(_summary(True))  # the best *method*, not a ceiling


def test_an_older_summary_without_the_column_falls_back_to_the_name():
    table = comparison_table(_summary(False))
    assert dict(zip(table["method"], table["role"])) == {"instant": "", "peek_at_query": "", "mixing_ceiling": "ceiling"}
    assert "<strong>peek_at_query</strong>" in best_methods_sentence(_summary(False))
