"""A self-contained HTML report of a run: tables inline, plots linked beside it."""

from __future__ import annotations

import html
from datetime import datetime, timezone

import polars as pl

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#555;font-size:.9em}
"""


def main_methods(column: str = "method") -> pl.Expr:
    """Rows to show in a main view: every method but the single experts' zero-shot rows
    (``zero_shot_<source>``); the zero-shot ensemble stays."""
    return ~pl.col(column).str.starts_with("zero_shot_") | (pl.col(column) == "zero_shot_ensemble")


def table_html(df: pl.DataFrame, digits: int = 3, max_rows: int = 60) -> str:
    if df.height == 0:
        return "<p class='note'>(empty)</p>"

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in df.head(max_rows).iter_rows())
    more = f"<p class='note'>{df.height - max_rows} more rows in the CSV.</p>" if df.height > max_rows else ""
    return f"<table><tr>{head}</tr>{rows}</table>{more}"


def expert_matrix(expert_metrics: pl.DataFrame, metric: str = "srocc") -> pl.DataFrame:
    """Experts as rows, test sources as columns."""
    t = expert_metrics.filter(pl.col("expert") != "constant").select("expert", "source", metric)
    return t.pivot(on="source", index="expert", values=metric)


def build_html(sections: list[tuple[str, str]], protocol: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Aestimo report</title><style>{STYLE}</style></head>"
        f"<body><h1>Aestimo report</h1><p class='note'>Generated {stamp}. Personalization protocol: "
        f"{html.escape(protocol)}.</p>{body}</body></html>"
    )
