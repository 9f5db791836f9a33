"""Statistics over people: the unit of a personalization result is the person.

A person's repeats (different support samples) are averaged first; means,
intervals and paired tests are then over people, never over runs, so that ten
repeats of four people count as four observations, not forty. Intervals are
percentile bootstraps over people (``scipy.stats.bootstrap``) from a seed.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
from scipy import stats

PERSON = ["source", "rater_id"]
MAE = ("mae", "mae_low", "mae_middle", "mae_high")  # template scale; on the person's low / middle / high ratings


def per_person(metrics_table: pl.DataFrame) -> pl.DataFrame:
    """One row per method × k × person: SROCC and PLCC averaged over the person's repeats (NaN runs skipped)."""
    return (
        metrics_table.filter(pl.col("srocc").is_not_nan())
        .group_by("method", "k", *PERSON)
        .agg(pl.col("srocc").mean(), pl.col("plcc").mean(), *[pl.col(c).mean() for c in MAE if c in metrics_table.columns],
             pl.len().alias("repeats"))
        .sort("method", "k", *PERSON)
    )


def bootstrap_ci(values: np.ndarray, seed: int, resamples: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per person); NaN with fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 or np.all(values == values[0]):
        m = float(values.mean()) if values.size else float("nan")
        return (m, m) if values.size >= 2 else (float("nan"), float("nan"))
    res = stats.bootstrap(
        (values,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (one per person); NaN when
    no difference is non-zero."""
    diff = np.asarray(diff, dtype=np.float64)
    diff = diff[np.isfinite(diff) & (diff != 0)]
    if diff.size == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that small samples use the exact distribution
        return float(stats.wilcoxon(diff).pvalue)


def summarize(metrics_table: pl.DataFrame, by_source: bool = False, seed: int = 0, resamples: int = 2000) -> pl.DataFrame:
    """Per method × k (and source when ``by_source``): people, mean SROCC / PLCC over people with a
    95 % bootstrap interval over people, and the std over repeats of the people-averaged SROCC
    (ddof = 1, as the papers report)."""
    groups = ["method", "k", *(["source"] if by_source else [])]
    people = per_person(metrics_table)
    per_repeat = (
        metrics_table.filter(pl.col("srocc").is_not_nan())
        .group_by(*groups, "repeat")
        .agg(pl.col("srocc").mean())
    )
    rows = []
    for key, t in people.group_by(groups, maintain_order=True):
        row = dict(zip(groups, key))
        srocc, plcc = t["srocc"].to_numpy(), t["plcc"].to_numpy()
        lo, hi = bootstrap_ci(srocc, seed, resamples)
        plo, phi = bootstrap_ci(plcc, seed, resamples)
        reps = per_repeat.filter(pl.all_horizontal(pl.col(g) == v for g, v in row.items()))["srocc"]
        rows.append({
            **row, "people": t.height, "repeats": int(t["repeats"].max()),
            "srocc_mean": float(srocc.mean()), "srocc_ci_low": lo, "srocc_ci_high": hi,
            "srocc_std": float(reps.std(ddof=1)) if reps.len() > 1 else float("nan"),
            "plcc_mean": float(np.nanmean(plcc)), "plcc_ci_low": plo, "plcc_ci_high": phi,
            **{c: _nanmean(t[c]) if c in t.columns else float("nan") for c in MAE},
        })
    schema = {g: (pl.Int64 if g == "k" else pl.String) for g in groups} | {
        "people": pl.Int64, "repeats": pl.Int64, "srocc_mean": pl.Float64, "srocc_ci_low": pl.Float64,
        "srocc_ci_high": pl.Float64, "srocc_std": pl.Float64, "plcc_mean": pl.Float64, "plcc_ci_low": pl.Float64,
        "plcc_ci_high": pl.Float64, **dict.fromkeys(MAE, pl.Float64),
    }
    order = [*(["source"] if by_source else []), "k", "srocc_mean"]
    return pl.DataFrame(rows, schema=schema).sort(order, descending=[False] * (len(order) - 1) + [True])


def _nanmean(col: pl.Series) -> float:
    v = col.cast(pl.Float64).fill_null(float("nan")).to_numpy()
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def gains(metrics_table: pl.DataFrame, method: str, versus: str) -> pl.DataFrame:
    """Each person's mean SROCC difference ``method − versus`` per k (repeats both have, averaged first)."""
    run = [*PERSON, "k", "repeat"]
    a = metrics_table.filter(pl.col("method") == method).select(*run, pl.col("srocc").alias("a"))
    b = metrics_table.filter(pl.col("method") == versus).select(*run, pl.col("srocc").alias("b"))
    both = a.join(b, on=run, how="inner").filter(pl.col("a").is_not_nan() & pl.col("b").is_not_nan())
    return both.group_by("k", *PERSON).agg((pl.col("a") - pl.col("b")).mean().alias("gain")).sort("k", *PERSON)


COMPARISON_SCHEMA = {
    "method": pl.String, "versus": pl.String, "k": pl.Int64, "people": pl.Int64, "mean_diff": pl.Float64,
    "diff_ci_low": pl.Float64, "diff_ci_high": pl.Float64, "wins": pl.Int64, "losses": pl.Int64, "ties": pl.Int64,
    "wilcoxon_p": pl.Float64,
}


def paired(metrics_table: pl.DataFrame, method: str, versus: str, seed: int = 0, resamples: int = 2000) -> pl.DataFrame:
    """``method`` against ``versus`` per k, over the people both have: each person's mean SROCC
    difference (repeats averaged first, on the runs both methods have), wins / losses / ties over
    people, the bootstrap interval of the mean difference and the Wilcoxon test over people."""
    people = gains(metrics_table, method, versus).rename({"gain": "d"})
    rows = []
    for (k,), t in people.group_by(["k"], maintain_order=True):
        d = t["d"].to_numpy()
        lo, hi = bootstrap_ci(d, seed, resamples)
        rows.append({
            "method": method, "versus": versus, "k": int(k), "people": len(d), "mean_diff": float(d.mean()),
            "diff_ci_low": lo, "diff_ci_high": hi, "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
            "ties": int((d == 0).sum()), "wilcoxon_p": wilcoxon_p(d),
        })
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA)


def against_all(metrics_table: pl.DataFrame, method: str, skip: tuple[str, ...] = (), seed: int = 0, resamples: int = 2000) -> pl.DataFrame:
    """``method`` paired over people with every other method in the table but those in ``skip`` (the ceilings)."""
    others = [m for m in metrics_table["method"].unique(maintain_order=True).to_list() if m != method and m not in skip]
    tables = [paired(metrics_table, method, m, seed, resamples) for m in others]
    return pl.concat(tables).sort("k", "versus") if tables else pl.DataFrame(schema=COMPARISON_SCHEMA)


def against_reference(metrics_table: pl.DataFrame, reference: str, skip: tuple[str, ...] = (), seed: int = 0,
                      resamples: int = 2000) -> pl.DataFrame:
    """Every method (but ``reference`` and those in ``skip``) paired over people against ``reference``:
    ``method − reference`` per k on the runs both have, with its interval and test."""
    if reference not in set(metrics_table["method"].to_list()):
        return pl.DataFrame(schema=COMPARISON_SCHEMA)
    others = [m for m in metrics_table["method"].unique(maintain_order=True).to_list() if m != reference and m not in skip]
    tables = [paired(metrics_table, m, reference, seed, resamples) for m in others]
    return pl.concat(tables).sort("k", "mean_diff", descending=[False, True]) if tables else pl.DataFrame(schema=COMPARISON_SCHEMA)
