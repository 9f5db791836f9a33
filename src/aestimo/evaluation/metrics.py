"""Evaluation metrics (numpy / scipy): correlations, accuracy, EMD, long-tail MAE.

Every function takes array-likes (lists, numpy, torch CPU tensors). Pairs with
a non-finite value are dropped. A correlation that is undefined (fewer than
two pairs, or a constant input) is NaN rather than an exception, so a per-user
table can hold it and ``np.nanmean`` can skip it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "as_1d",
    "binary_accuracy",
    "emd_per_sample",
    "plcc",
    "regression_report",
    "segment_bounds",
    "segment_mae",
    "segment_metrics",
    "segment_of",
    "srocc",
    "tail_mae",
]


def as_1d(x: Any) -> np.ndarray:
    """An array-like (list, numpy, torch CPU tensor) as a flat float64 array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _pairs(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = as_1d(y), as_1d(p)
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in length: {y.shape[0]} vs {p.shape[0]}")
    keep = np.isfinite(y) & np.isfinite(p)
    return y[keep], p[keep]


def _undefined(y: np.ndarray, p: np.ndarray) -> bool:
    return y.size < 2 or np.ptp(y) == 0 or np.ptp(p) == 0


def _pearson(y: np.ndarray, p: np.ndarray) -> float:
    # np.corrcoef, not stats.pearsonr: the same number without the test's p-value and checks
    # (a tenth of the time; a run computes ~40k per-run correlations)
    return float(np.clip(np.corrcoef(y, p)[0, 1], -1.0, 1.0))


def srocc(y: Any, p: Any) -> float:
    """Spearman rank-order correlation (Pearson of average ranks, as ``stats.spearmanr``); NaN when undefined."""
    y, p = _pairs(y, p)
    if _undefined(y, p):
        return float("nan")
    return _pearson(stats.rankdata(y), stats.rankdata(p))


def plcc(y: Any, p: Any) -> float:
    """Pearson linear correlation; NaN when undefined."""
    y, p = _pairs(y, p)
    if _undefined(y, p):
        return float("nan")
    return _pearson(y, p)


SEGMENTS = ("low", "middle", "high")  # of the true scores: the long tail's low 20 %, middle 60 %, high 20 %


def segment_bounds(reference: Any, low: float = 0.2, high: float = 0.8) -> tuple[float, float]:
    """The ``low`` and ``high`` quantiles of ``reference`` (numpy's default, linear interpolation).

    Raises ``ValueError`` when ``reference`` is empty or holds a non-finite value (drop those first),
    or when the quantile levels are not ``0 <= low <= high <= 1``.
    """
    ref = as_1d(reference)
    if ref.size == 0:
        raise ValueError("segment_bounds: reference is empty")
    if not np.isfinite(ref).all():
        bad = int((~np.isfinite(ref)).sum())
        raise ValueError(f"segment_bounds: reference holds {bad} non-finite value(s) out of {ref.size}")
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"segment_bounds: need 0 <= low <= high <= 1, got low={low}, high={high}")
    q_low, q_high = np.quantile(ref, [low, high])
    return float(q_low), float(q_high)


def segment_of(y: Any, bounds: tuple[float, float]) -> np.ndarray:
    """The segment ("low", "middle" or "high") of every value of ``y``, as a numpy array of strings.

    Rule, with ``bounds = (q_low, q_high)``: ``y <= q_low`` is "low", ``q_low < y <= q_high`` is
    "middle", ``y > q_high`` is "high". The intervals are closed on the right, so a value equal to a
    boundary belongs to the segment below it (``q_low`` itself is "low", ``q_high`` itself "middle"),
    and every value lands in exactly one segment. With many tied ratings a segment can therefore
    hold more, or fewer, than its nominal share; it can even be empty. NaN raises ``ValueError``.
    """
    v = as_1d(y)
    q_low, q_high = (float(b) for b in bounds)
    if not q_low <= q_high:
        raise ValueError(f"segment_of: bounds must satisfy q_low <= q_high, got {bounds}")
    if np.isnan(v).any():
        raise ValueError("segment_of: y holds NaN, which belongs to no segment")
    return np.where(v <= q_low, "low", np.where(v <= q_high, "middle", "high"))


def _row(segment: str, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    return {
        "segment": segment,
        "n": int(y.size),
        "mae": float(np.mean(np.abs(y - p))) if y.size else float("nan"),
        "plcc": plcc(y, p),
        "srocc": srocc(y, p),
    }


def segment_metrics(y_true: Any, y_pred: Any, bounds: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Rows ``{"segment", "n", "mae", "plcc", "srocc"}`` for "all", "low", "middle" and "high".

    Segments follow :func:`segment_of` on the true scores. ``bounds`` default to
    :func:`segment_bounds` of the finite values of ``y_true`` (so they do not depend on the
    predictions, and two predictors of the same images share them). Pairs with a non-finite value are
    then dropped. A segment without images has ``n = 0`` and NaN metrics.
    """
    y, p, seg = _segmented(y_true, y_pred, bounds)
    return [_row("all", y, p)] + [_row(s, y[seg == s], p[seg == s]) for s in SEGMENTS]


def _segmented(y_true: Any, y_pred: Any, bounds: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The finite pairs and each one's segment (bounds from the finite true scores by default)."""
    y, p = as_1d(y_true), as_1d(y_pred)
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape[0]} vs {p.shape[0]}")
    if bounds is None:
        bounds = segment_bounds(y[np.isfinite(y)])
    keep = np.isfinite(y) & np.isfinite(p)
    return y[keep], p[keep], segment_of(y[keep], bounds)


def segment_mae(y_true: Any, y_pred: Any, bounds: tuple[float, float] | None = None) -> dict[str, float]:
    """``{"all", "low", "middle", "high"}`` → MAE: :func:`segment_metrics`' MAE column alone (no
    correlations: a per-run table needs only this, thousands of times)."""
    y, p, seg = _segmented(y_true, y_pred, bounds)
    err = np.abs(y - p)
    out = {"all": float(err.mean()) if err.size else float("nan")}
    for s in SEGMENTS:
        part = err[seg == s]
        out[s] = float(part.mean()) if part.size else float("nan")
    return out


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
    :func:`segment_of`); an empty segment gives NaN."""
    y, p = _pairs(y, p)
    if y.size == 0:
        return {"low": float("nan"), "middle": float("nan"), "high": float("nan")}
    segs = segment_mae(y, p, segment_bounds(y, low, high))
    return {s: segs[s] for s in SEGMENTS}


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
