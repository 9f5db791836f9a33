"""Evaluation metrics (numpy / scipy): correlations, accuracy, EMD, long-tail MAE.

Every function takes array-likes (lists, numpy, torch CPU tensors). Pairs with
a non-finite value are dropped. A correlation that is undefined (fewer than
two pairs, or a constant input) is NaN rather than an exception, so a per-user
table can hold it and ``np.nanmean`` can skip it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "binary_accuracy",
    "emd_per_sample",
    "plcc",
    "regression_report",
    "srocc",
    "tail_mae",
]


def _as_1d(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _pairs(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = _as_1d(y), _as_1d(p)
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in length: {y.shape[0]} vs {p.shape[0]}")
    keep = np.isfinite(y) & np.isfinite(p)
    return y[keep], p[keep]


def _undefined(y: np.ndarray, p: np.ndarray) -> bool:
    return y.size < 2 or np.ptp(y) == 0 or np.ptp(p) == 0


def srocc(y: Any, p: Any) -> float:
    """Spearman rank-order correlation; NaN when undefined."""
    y, p = _pairs(y, p)
    if _undefined(y, p):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(y, p).statistic)


def plcc(y: Any, p: Any) -> float:
    """Pearson linear correlation; NaN when undefined."""
    y, p = _pairs(y, p)
    if _undefined(y, p):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.pearsonr(y, p).statistic)


def binary_accuracy(y: Any, p: Any, threshold: float) -> float:
    """Share of items on the same side of ``threshold`` (``>= threshold`` is "high")."""
    y, p = _pairs(y, p)
    if y.size == 0:
        return float("nan")
    return float(np.mean((y >= threshold) == (p >= threshold)))


def emd_per_sample(p: Any, q: Any, r: float = 2) -> np.ndarray:
    """EMD between rows of two distributions over ordered bins: ``(mean |ΔCDF|^r)^(1/r)``."""
    p, q = np.atleast_2d(np.asarray(p, dtype=np.float64)), np.atleast_2d(np.asarray(q, dtype=np.float64))
    if p.shape != q.shape:
        raise ValueError(f"p and q differ in shape: {p.shape} vs {q.shape}")
    diff = np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1)
    return np.mean(np.abs(diff) ** r, axis=-1) ** (1.0 / r)


def tail_mae(y: Any, p: Any, low: float = 0.2, high: float = 0.8) -> dict[str, float]:
    """MAE on the low 20 % / middle 60 % / high 20 % of the true scores (the segments of
    :func:`aestimo.evaluation.long_tail.segment_of`); an empty segment gives NaN."""
    from aestimo.evaluation.long_tail import segment_bounds, segment_metrics  # it builds on this module

    y, p = _pairs(y, p)
    if y.size == 0:
        return {"low": float("nan"), "middle": float("nan"), "high": float("nan")}
    rows = segment_metrics(y, p, segment_bounds(y, low, high))
    return {r["segment"]: r["mae"] for r in rows if r["segment"] != "all"}


def regression_report(
    y: Any,
    p: Any,
    threshold: float | None = None,
    dist_true: Any = None,
    dist_pred: Any = None,
) -> dict[str, float]:
    """One flat dict of the usual metrics for predicted scores ``p`` against true ``y``.

    Keys: ``n``, ``plcc``, ``srocc``, ``mae``, ``rmse``, ``accuracy`` (when a
    ``threshold`` is given), ``emd`` (mean over rows where both distributions
    are finite), ``mae_low``, ``mae_middle``, ``mae_high``.
    """
    yy, pp = _pairs(y, p)
    err = yy - pp
    report: dict[str, float] = {
        "n": int(yy.size),
        "plcc": plcc(yy, pp),
        "srocc": srocc(yy, pp),
        "mae": float(np.mean(np.abs(err))) if yy.size else float("nan"),
        "rmse": float(np.sqrt(np.mean(err**2))) if yy.size else float("nan"),
    }
    if threshold is not None:
        report["accuracy"] = binary_accuracy(yy, pp, threshold)
    if dist_true is not None and dist_pred is not None:
        dt, dp = np.atleast_2d(np.asarray(dist_true, float)), np.atleast_2d(np.asarray(dist_pred, float))
        rows = np.isfinite(dt).all(axis=1) & np.isfinite(dp).all(axis=1)
        report["emd"] = float(emd_per_sample(dp[rows], dt[rows]).mean()) if rows.any() else float("nan")
    report.update({f"mae_{k}": v for k, v in tail_mae(yy, pp).items()})
    return report
