"""Long-tail evaluation in the style of ELTA (ICML 2024): metrics and plots per segment of the true score.

Aesthetic scores crowd the middle of the scale, so a model can earn a good overall MAE by predicting
"average" everywhere. ELTA therefore reports errors separately on the low 20 %, middle 60 % and high
20 % of the TRUE scores. The segments and their metrics live with the other metrics
(:func:`~aestimo.evaluation.metrics.segment_bounds`, ``segment_of``, ``segment_metrics``, re-exported
here); this module draws the figures of the long-tail study: the APDS (beta, t) grid, predicted-vs-true
scatters coloured by segment, and per-segment MAE bars.

Conventions follow :mod:`aestimo.evaluation.metrics`: pairs with a non-finite value are dropped, and a
metric that is undefined (an empty segment, a single image, a constant input) is NaN, never an error.
"""

from __future__ import annotations

import textwrap

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from aestimo.evaluation.metrics import SEGMENTS, as_1d, segment_bounds, segment_metrics, segment_of  # noqa: E402

__all__ = [
    "SEGMENTS",
    "plot_apds_surface",
    "plot_long_tail_scatter",
    "plot_segment_mae",
    "segment_bounds",
    "segment_metrics",
    "segment_of",
]

_COLOURS = {"low": "tab:blue", "middle": "tab:gray", "high": "tab:red"}


def _tick(v: float) -> str:
    return f"{v:g}"


def plot_apds_surface(grid: pl.DataFrame, chosen: tuple[float, float] | None, title: str) -> plt.Figure:
    """Heatmap of MAE over the APDS (beta, t) grid: beta on rows, t on columns, both sorted ascending.

    Each cell shows the MAE and the fraction of images kept (``"0.41\\n35%"``); cells whose MAE is NaN
    or infinite (nothing kept) are grey and blank. ``chosen = (beta, t)`` is outlined in red; it must
    be one of the grid's pairs. ``grid`` needs columns ``beta``, ``t``, ``mae``, ``kept_fraction`` with
    one row per pair.
    """
    missing = {"beta", "t", "mae", "kept_fraction"} - set(grid.columns)
    if missing:
        raise ValueError(f"plot_apds_surface: grid lacks column(s) {sorted(missing)}")
    if grid.select("beta", "t").is_duplicated().any():
        raise ValueError("plot_apds_surface: grid has more than one row for a (beta, t) pair")
    betas = sorted(set(grid["beta"].cast(pl.Float64).to_list()))
    ts = sorted(set(grid["t"].cast(pl.Float64).to_list()))
    mae = np.full((len(betas), len(ts)), np.nan)
    kept = np.full((len(betas), len(ts)), np.nan)
    for r in grid.iter_rows(named=True):
        i, j = betas.index(float(r["beta"])), ts.index(float(r["t"]))
        mae[i, j] = np.nan if r["mae"] is None else r["mae"]
        kept[i, j] = np.nan if r["kept_fraction"] is None else r["kept_fraction"]

    finite = np.isfinite(mae)
    vmin, vmax = (float(mae[finite].min()), float(mae[finite].max())) if finite.any() else (0.0, 1.0)
    if vmax == vmin:
        vmax = vmin + 1e-9
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="lightgrey")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(ts) + 2.5), max(3.0, 0.6 * len(betas) + 1.8)))
    im = ax.imshow(np.ma.masked_invalid(mae), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i in range(len(betas)):
        for j in range(len(ts)):
            if finite[i, j]:
                shade = (mae[i, j] - vmin) / (vmax - vmin)  # viridis_r: high MAE is dark
                kept_txt = f"{kept[i, j]:.0%}" if np.isfinite(kept[i, j]) else "?"
                ax.text(
                    j,
                    i,
                    f"{mae[i, j]:.2f}\n{kept_txt}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if shade > 0.5 else "black",
                )
    if chosen is not None:
        bi = [k for k, b in enumerate(betas) if np.isclose(b, chosen[0])]
        tj = [k for k, t in enumerate(ts) if np.isclose(t, chosen[1])]
        if not bi or not tj:
            raise ValueError(f"plot_apds_surface: chosen pair {chosen} is not in the grid")
        ax.add_patch(Rectangle((tj[0] - 0.5, bi[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_xticks(range(len(ts)), [_tick(t) for t in ts])
    ax.set_yticks(range(len(betas)), [_tick(b) for b in betas])
    ax.set_xlabel("t")
    ax.set_ylabel("beta")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8, label="MAE")
    fig.tight_layout()
    return fig


def plot_long_tail_scatter(
    y_true: Any, preds: dict[str, Any], title: str, bounds: tuple[float, float] | None = None
) -> plt.Figure:
    """Predicted vs true score, one panel per entry of ``preds``, points coloured by the true segment.

    Each panel has the y = x diagonal, dotted lines at the segment bounds, and the low / middle / high
    MAE in its title. ``bounds`` default to :func:`segment_bounds` of the finite values of ``y_true``.
    """
    if not preds:
        raise ValueError("plot_long_tail_scatter: preds is empty")
    y_all = as_1d(y_true)
    if bounds is None:
        bounds = segment_bounds(y_all[np.isfinite(y_all)])
    fig, axes = plt.subplots(1, len(preds), figsize=(4.0 * len(preds), 4.0), sharex=True, sharey=True, squeeze=False)
    for ax, (name, pred) in zip(axes[0], preds.items()):
        p_all = as_1d(pred)
        if p_all.shape != y_all.shape:
            raise ValueError(f"plot_long_tail_scatter: '{name}' has {p_all.size} predictions for {y_all.size} scores")
        keep = np.isfinite(y_all) & np.isfinite(p_all)
        y, p = y_all[keep], p_all[keep]
        seg = segment_of(y, bounds)
        for s in SEGMENTS:
            m = seg == s
            ax.scatter(
                y[m],
                p[m],
                s=8,
                alpha=0.5,
                color=_COLOURS[s],
                label=f"{s} (n={int(m.sum())})",
                edgecolors="none",
                rasterized=True,
            )
        if y.size:
            lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
            ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, linestyle="--", label="y = x")
        for b in bounds:
            ax.axvline(b, color="grey", linewidth=0.8, linestyle=":")
        mae = {r["segment"]: r["mae"] for r in segment_metrics(y, p, bounds)}
        ax.set_title(
            f"{name}\nMAE low {mae['low']:.2f} · middle {mae['middle']:.2f} · high {mae['high']:.2f}", fontsize=9
        )
        ax.set_xlabel("true score")
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("predicted score")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_segment_mae(table: pl.DataFrame, title: str) -> plt.Figure:
    """Grouped bars of MAE: segments low / middle / high on the x axis, one bar per ``variant``.

    Rows of segment "all" are ignored. Variants keep their order of first appearance. When a
    (variant, segment) has several rows (e.g. one per ``expert``), the bar is their NaN-ignoring
    mean and the individual values are drawn as black dots on it.
    """
    missing = {"variant", "segment", "mae"} - set(table.columns)
    if missing:
        raise ValueError(f"plot_segment_mae: table lacks column(s) {sorted(missing)}")
    table = table.filter(pl.col("segment").is_in(list(SEGMENTS)))
    variants = table["variant"].unique(maintain_order=True).to_list()
    width = 0.8 / max(len(variants), 1)
    fig, ax = plt.subplots(figsize=(2.5 + 0.5 * len(SEGMENTS) * max(len(variants), 1), 3.6))
    x = np.arange(len(SEGMENTS))
    for k, v in enumerate(variants):
        sub = table.filter(pl.col("variant") == v)
        values = [
            np.asarray(sub.filter(pl.col("segment") == s)["mae"].cast(pl.Float64).fill_null(np.nan).to_numpy())
            for s in SEGMENTS
        ]
        heights = [float(np.nanmean(a)) if np.isfinite(a).any() else float("nan") for a in values]
        pos = x - 0.4 + width * (k + 0.5)
        bars = ax.bar(pos, heights, width=width, label=str(v))
        ax.bar_label(bars, labels=[f"{h:.2f}" if np.isfinite(h) else "" for h in heights], fontsize=7, padding=2)
        for xi, a in zip(pos, values):
            if a.size > 1:
                ax.scatter(np.full(a.size, xi), a, s=6, color="black", zorder=3)
    ax.set_xticks(x, list(SEGMENTS))
    ax.margins(y=0.12)  # room for the value labels
    ax.set_xlabel("segment of the true score")
    ax.set_ylabel("MAE")
    ax.set_title(textwrap.fill(title, int(9 * fig.get_figwidth())))  # a narrow figure wraps its title, never cuts it
    if variants:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
