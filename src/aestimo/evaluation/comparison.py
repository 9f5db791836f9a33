"""Paired comparison of two personalization methods on the same runs.

The summary's mean ± std says how each method does; it does not say whether
one method beats another on *the same* people. Every method here is run on the
same person, k and repeat (the same support and query images), so the honest
test is paired: the per-run SROCC difference, how often each side wins, and a
Wilcoxon signed-rank test on the differences (scipy). With a handful of people
the p-value tells a reader whether an ordering in the summary is more than a
coin flip.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
from scipy import stats

RUN = ["source", "rater_id", "k", "repeat"]

SCHEMA = {
    "method": pl.String,
    "versus": pl.String,
    "k": pl.Int64,
    "runs": pl.Int64,
    "mean_diff": pl.Float64,
    "wins": pl.Int64,
    "losses": pl.Int64,
    "ties": pl.Int64,
    "wilcoxon_p": pl.Float64,
}


def wilcoxon_p(diff: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; NaN when there is
    nothing to test (no non-zero difference)."""
    diff = np.asarray(diff, dtype=np.float64)
    diff = diff[np.isfinite(diff) & (diff != 0)]
    if diff.size == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that small samples use the exact distribution
        return float(stats.wilcoxon(diff).pvalue)


def paired(metrics_table: pl.DataFrame, method: str, versus: str) -> pl.DataFrame:
    """``method`` against ``versus`` per k on the runs both have (SROCC defined on both)."""
    a = metrics_table.filter(pl.col("method") == method).select(*RUN, pl.col("srocc").alias("a"))
    b = metrics_table.filter(pl.col("method") == versus).select(*RUN, pl.col("srocc").alias("b"))
    both = a.join(b, on=RUN, how="inner").filter(pl.col("a").is_not_nan() & pl.col("b").is_not_nan())
    rows = []
    for (k,), t in both.group_by(["k"], maintain_order=True):
        d = (t["a"] - t["b"]).to_numpy()
        rows.append(
            {
                "method": method,
                "versus": versus,
                "k": int(k),
                "runs": len(d),
                "mean_diff": float(d.mean()),
                "wins": int((d > 0).sum()),
                "losses": int((d < 0).sum()),
                "ties": int((d == 0).sum()),
                "wilcoxon_p": wilcoxon_p(d),
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA)


def against_all(metrics_table: pl.DataFrame, method: str, skip: tuple[str, ...] = ()) -> pl.DataFrame:
    """``method`` paired with every other method in the table but those in ``skip`` (the ceilings)."""
    others = [m for m in metrics_table["method"].unique(maintain_order=True).to_list() if m != method and m not in skip]
    tables = [paired(metrics_table, method, m) for m in others]
    return pl.concat(tables).sort("k", "versus") if tables else pl.DataFrame(schema=SCHEMA)
