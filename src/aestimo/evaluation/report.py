"""A self-contained HTML report of a run: tables inline, plots linked beside it.

Every table sits in its own horizontally scrolling box (its first column pinned), so a wide table
never widens the page; a missing value (null or NaN) reads as an en dash.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime, timezone

import polars as pl

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.scroll{overflow-x:auto;max-width:100%;margin:.5em 0 1.5em}
table{border-collapse:separate;border-spacing:0;font-size:.9em}
td,th{border:solid #ccc;border-width:0 1px 1px 0;padding:.25em .6em;text-align:right;white-space:nowrap;background:#fff}
tr:first-child>*{border-top-width:1px} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left;position:sticky;left:0;border-left-width:1px}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#555;font-size:.9em}
"""


def detail_rows(summary: pl.DataFrame) -> list[str]:
    """The summary's detail rows (one per expert, say: ``Method.detail_variants``), by its
    ``detail`` column; a table without one (an older run's) falls back to the single experts'
    ``zero_shot_<source>`` rows of the default configuration."""
    if "detail" in summary.columns:
        return summary.filter(pl.col("detail").fill_null(False))["method"].unique().to_list()
    rows = summary["method"].unique().to_list() if "method" in summary.columns else []
    return [r for r in rows if r.startswith("zero_shot_") and r != "zero_shot_ensemble"]


def main_methods(hidden: Sequence[str] = (), column: str = "method") -> pl.Expr:
    """Rows to show in a main view: every row but the details ``hidden`` (:func:`detail_rows`)."""
    return ~pl.col(column).is_in(list(hidden))


MISSING = "\u2013"  # an en dash: what a table shows for a missing value (null, NaN)


def number(v: float | None, spec: str) -> str:
    """``v`` formatted with ``spec`` (``".3f"``, ``"+.3f"``, ``".3g"``), or :data:`MISSING` when it is
    None or NaN: a single-repeat row has no std over repeats, and a reader should see a dash, not ``nan``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    return f"{v:{spec}}"


def table_html(df: pl.DataFrame, digits: int = 3, max_rows: int = 60, float_spec: str | None = None) -> str:
    """``df`` as an HTML table in a box that scrolls sideways when the table is wider than the page.
    Floats get ``float_spec`` (default: ``digits`` decimals); missing values read :data:`MISSING`."""
    if df.height == 0:
        return "<p class='note'>(empty)</p>"
    spec = float_spec or f".{digits}f"

    def cell(v: object) -> str:
        if v is None or isinstance(v, float):
            return number(v, spec)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in df.head(max_rows).iter_rows())
    more = f"<p class='note'>{df.height - max_rows} more rows in the CSV.</p>" if df.height > max_rows else ""
    return f"<div class='scroll'><table><tr>{head}</tr>{rows}</table></div>{more}"


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


def long_tail_section(
    metrics: pl.DataFrame, ablation: pl.DataFrame, apds_people: pl.DataFrame, summary: pl.DataFrame, comparisons: pl.DataFrame
) -> str:
    """The long-tail section: experts plain against self-trained per segment, the ablation, the
    (β, t) surfaces, and person-level self-training over people."""
    wide = (
        metrics.filter(pl.col("segment") != "all").pivot(on="segment", index=["expert", "variant"], values="mae")
        .join(metrics.filter(pl.col("segment") == "all").select("expert", "variant", "srocc", "plcc", pl.col("mae").alias("mae_all")),
              on=["expert", "variant"])
        if metrics.height else metrics
    )
    people_cols = [c for c in ("method", "k", "people", "repeats", "srocc_mean", "srocc_ci_low", "srocc_ci_high", "mae",
                               "mae_low", "mae_middle", "mae_high") if c in summary.columns]
    return (
        "<p>Ratings crowd the middle of the scale, so a scorer learns to answer \"average\". Each expert gets one "
        "more training round on its labelled images plus APDS pseudo-labels of other sources' training images "
        "(their labels never read), with TFA (tail feature mixup) and FLSA (feature-label similarity alignment). "
        "MAE on the low 20 % / middle 60 % / high 20 % of each expert's own test split (cut at its true scores' "
        "quantiles), template scale.</p>"
        + table_html(wide)
        + "<img src='self_training/segment_mae.png' alt='MAE per segment, plain and self-trained'>"
        + "<img src='self_training/scatter.png' alt='predicted against true, plain and self-trained'>"
        + "<h3>Ablation: TFA, FLSA and APDS on and off</h3><p>Each row is one round from the same plain expert "
        "(\"round: none\" is the round on labelled images alone: what more training gives without the modules).</p>"
        + table_html(ablation)
        + "<h3>APDS (β, t), chosen on validation splits</h3><p>MAE of the kept pseudo-labels against the true "
        "labels of each expert's validation split (never a test split); a pair must keep a minimum share. People "
        "use the pair with the lowest MAE averaged over experts.</p>"
        + "<img src='self_training/apds_heatmap.png' alt='APDS surface of one expert'>"
        + "<img src='self_training/apds_people_heatmap.png' alt='APDS surface averaged over experts'>"
        + table_html(apds_people.filter(pl.col("chosen")) if "chosen" in apds_people.columns else apds_people)
        + "<h3>People: self-training on their unrated album images</h3><p>The person's model pseudo-labels "
        "album images they never rated (never their query images), sharpened at their own mean; the confident ones "
        "join the support and the model is refitted. Over people (repeats averaged first), with the base method "
        "on the same runs; MAE on each person's low / middle / high query ratings (template scale: a rank-trained "
        "model's scale is its own, so compare MAE between rows of one method).</p>"
        + table_html(summary.select(people_cols))
        + "<p>Paired over people against the base method on the same runs:</p>"
        + table_html(comparisons)
    )


def is_ceiling(table: pl.DataFrame) -> pl.Expr:
    """Rows of ceilings: bounds read from what no method may see, not methods. The summary's
    ``ceiling`` column says so (the registry's ``Method.ceiling``); a table without one (an older
    run's) falls back to the ``<name>_ceiling`` convention of the default configuration."""
    if "ceiling" in table.columns:
        return pl.col("ceiling").fill_null(False)
    return pl.col("method").str.ends_with("_ceiling")


def _interval(mean: float | None, low: float | None, high: float | None) -> str:
    """``0.437 [0.327, 0.525]``; the bracket is left out when there is no interval (NaN or missing),
    and a missing mean reads :data:`MISSING`."""
    if mean is None or mean != mean:
        return MISSING
    if low is None or high is None or low != low or high != high:
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def comparison_table(summary: pl.DataFrame) -> pl.DataFrame:
    """Methods as rows, for each k the people and mean SROCC with its 95 % interval over people;
    methods ordered by mean SROCC at the largest k, ceilings last and marked."""
    ks = sorted(summary["k"].unique().to_list())
    t = summary.with_columns(
        pl.struct("srocc_mean", "srocc_ci_low", "srocc_ci_high")
        .map_elements(lambda r: _interval(r["srocc_mean"], r["srocc_ci_low"], r["srocc_ci_high"]), return_dtype=pl.String)
        .alias("srocc")
    )
    last = t.filter(pl.col("k") == ks[-1]).select("method", pl.col("srocc_mean").fill_nan(None).alias("_order"))
    wide = t.group_by("method").agg(is_ceiling(t).any().alias("_ceiling"))
    for k in ks:
        at_k = t.filter(pl.col("k") == k).select(
            "method", pl.col("people").alias(f"people, k={k}"), pl.col("srocc").alias(f"SROCC [95 % CI], k={k}")
        )
        wide = wide.join(at_k, on="method", how="left")
    return (
        wide.join(last, on="method", how="left")
        .with_columns(pl.when(pl.col("_ceiling")).then(pl.lit("ceiling")).otherwise(pl.lit("")).alias("role"))
        .sort(["_ceiling", "_order", "method"], descending=[False, True, False], nulls_last=True)
        .select("method", "role", pl.exclude("method", "role", "_order", "_ceiling"))
    )


def best_methods_sentence(summary: pl.DataFrame) -> str:
    """One sentence per k naming the non-ceiling method with the highest mean SROCC, with how many
    people it was measured on when that is fewer than most methods had."""
    parts = []
    methods = summary.filter(~is_ceiling(summary) & pl.col("srocc_mean").is_not_nan())
    for k in sorted(methods["k"].unique().to_list()):
        at_k = methods.filter(pl.col("k") == k)
        best = at_k.sort("srocc_mean", descending=True).row(0, named=True)
        most = int(at_k["people"].max())
        few = f", on {best['people']} people where most methods have {most}" if best["people"] < most else ""
        interval = _interval(best["srocc_mean"], best["srocc_ci_low"], best["srocc_ci_high"])
        parts.append(f"at k = {k}, <strong>{html.escape(best['method'])}</strong> ({interval}{few})")
    if not parts:
        return "<p class='note'>No method has a mean SROCC yet.</p>"
    return "<p>Best method by mean SROCC over people, ceilings aside: " + "; ".join(parts) + ".</p>"


def run_seconds(timings: pl.DataFrame) -> pl.DataFrame:
    """Seconds per run (one person, one repeat; shared work shared out) per method × k: sources pooled,
    weighted by their runs when the table has ``runs``."""
    weight = pl.col("runs") if "runs" in timings.columns else pl.lit(1.0)
    return timings.group_by("method", "k").agg(
        ((pl.col("seconds_per_run") * weight).sum() / weight.sum()).alias("seconds_per_run")
    )


def seconds_per_person(timings: pl.DataFrame) -> pl.DataFrame:
    """:func:`run_seconds` as a method × k table."""
    wide = run_seconds(timings).sort("k").pivot(on="k", index="method", values="seconds_per_run")
    return wide.rename({c: f"seconds, k={c}" for c in wide.columns if c != "method"}).sort("method")


def best_method(vs_reference: pl.DataFrame, default: str) -> str:
    """The method with the largest mean gain over the reference at the largest k, among those run on
    every person there (a sampled method is not the best on a few); ``default`` when none is paired."""
    if vs_reference.height == 0:
        return default
    top = vs_reference.filter(pl.col("k") == vs_reference["k"].max())
    return top.filter(pl.col("people") == top["people"].max()).sort("mean_diff", descending=True)["method"][0]


def method_comparison_section(
    summary: pl.DataFrame, timings: pl.DataFrame, ablations: dict[str, pl.DataFrame] | None = None,
    best_gains_shown_above: str | None = None,
) -> str:
    """Methods side by side: mean SROCC per k with its interval (ceilings marked), the best method
    at each k, accuracy against cost, who gains person by person, seconds per person and each
    ablation given (its rows, by title). ``best_gains_shown_above`` names the best method when its
    gains figure is the one the report already shows (the deployed method's): it is not shown twice."""
    if summary.height:
        out = (
            "<p>Mean SROCC over held-out people with a 95 % bootstrap interval over people (each person's "
            "repeats averaged first); <em>people</em> says how many people a cell has. Rows marked "
            "<em>ceiling</em> read what no method may and bound what is reachable.</p>"
            + table_html(comparison_table(summary)) + best_methods_sentence(summary)
        )
    else:
        out = table_html(summary)
    seconds = seconds_per_person(timings) if timings.height else timings
    out += (
        "<h3>Accuracy against cost</h3>"
        "<img src='personalization/cost.png' alt='mean SROCC against seconds per person'>"
        "<h3>Who gains, person by person: the best method over the reference</h3>"
        + (f"<p>The best method is {html.escape(best_gains_shown_above)}, the deployed one: its gains are "
           "the figure under Personalization.</p>" if best_gains_shown_above else
           "<img src='personalization/best_gains.png' alt='per-person SROCC gain of the best method'>")
        + "<h3>Seconds per person</h3><p class='note'>One run is one person and one repeat, a method's "
        "shared work shared out over its runs; seconds on this machine, they change from machine to machine.</p>"
        + table_html(seconds, float_spec=".3g")
    )
    for title, table in (ablations or {}).items():
        out += f"<h3>Ablation: {html.escape(title)}</h3>" + table_html(table)
    return out


def versus_reference_section(table: pl.DataFrame, reference: str | None) -> str:
    """Plain sentences: does each method beat ``reference`` at each k, over people (its interval
    excluding zero), and the table behind them."""
    if reference is None:
        return "<p class='note'>No reference method is configured (personalize.reference_method).</p>"
    if table.height == 0:
        return f"<p class='note'>No method could be paired with {html.escape(reference)}.</p>"
    lines = []
    for r in table.sort("method", "k").iter_rows(named=True):
        lo, hi = r["diff_ci_low"], r["diff_ci_high"]
        verdict = ("beats" if lo > 0 else "is below") if (lo > 0 or hi < 0) else "does not clearly beat"
        lines.append(
            f"<li><b>{html.escape(r['method'])}</b> {verdict} {html.escape(reference)} at k = {r['k']}: "
            f"{number(r['mean_diff'], '+.3f')} [{number(lo, '+.3f')}, {number(hi, '+.3f')}] over {r['people']} people "
            f"({r['wins']} wins / {r['losses']} losses, Wilcoxon p = {number(r['wilcoxon_p'], '.2g')}).</li>"
        )
    return (f"<h3>Against {html.escape(reference)}, paired over people</h3><ul>" + "".join(lines) + "</ul>"
            + table_html(table))
