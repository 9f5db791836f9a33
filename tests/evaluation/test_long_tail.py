"""Long-tail (ELTA-style) segments, per-segment metrics and plots, with hand-computed answers."""

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from matplotlib.patches import Rectangle

from aestimo.evaluation.long_tail import (
    SEGMENTS,
    plot_apds_surface,
    plot_long_tail_scatter,
    plot_segment_mae,
    segment_bounds,
    segment_metrics,
    segment_of,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_segment_bounds_known_values():
    assert SEGMENTS == ("low", "middle", "high")
    # n = 5, linear: q20 at position 0.2 * 4 = 0.8 -> 1 + 0.8 * (2 - 1) = 1.8; q80 at 3.2 -> 4 + 0.2 = 4.2
    assert segment_bounds([5, 3, 1, 4, 2]) == pytest.approx((1.8, 4.2))
    # n = 6: positions 0.2 * 5 = 1 and 0.8 * 5 = 4 fall exactly on data values 2 and 5
    assert segment_bounds([1, 2, 3, 4, 5, 6]) == pytest.approx((2.0, 5.0))
    # other levels: quartiles of 0..4 are 1 and 3
    assert segment_bounds(np.arange(5.0), low=0.25, high=0.75) == pytest.approx((1.0, 3.0))


@pytest.mark.parametrize("bad", [[], [1.0, np.nan, 3.0], [1.0, np.inf]])
def test_segment_bounds_rejects_empty_or_non_finite(bad):
    with pytest.raises(ValueError, match="segment_bounds"):
        segment_bounds(bad)


def test_segment_bounds_rejects_bad_levels():
    with pytest.raises(ValueError):
        segment_bounds([1, 2, 3], low=0.8, high=0.2)


def test_boundary_values_land_in_exactly_one_segment():
    bounds = segment_bounds([1, 2, 3, 4, 5, 6])  # (2, 5), both equal to data values
    seg = segment_of([1, 2, 3, 4, 5, 6], bounds)
    # 2 == q_low -> "low"; 5 == q_high -> "middle" (closed on the right); 6 > q_high -> "high"
    assert seg.tolist() == ["low", "low", "middle", "middle", "middle", "high"]
    # interpolated bounds of [1..5] are (1.8, 4.2): the boundaries themselves and their neighbours
    lo, hi = segment_bounds([1, 2, 3, 4, 5])
    probes = [lo, np.nextafter(lo, np.inf), hi, np.nextafter(hi, np.inf)]
    assert segment_of(probes, (lo, hi)).tolist() == ["low", "middle", "middle", "high"]
    assert segment_of([1, 2, 3, 4, 5], (lo, hi)).tolist() == ["low", "middle", "middle", "middle", "high"]
    # every value gets exactly one label out of the three
    y = np.random.default_rng(0).integers(1, 6, size=200).astype(float)
    labels = segment_of(y, segment_bounds(y))
    assert set(labels.tolist()) <= set(SEGMENTS) and labels.shape == y.shape


def test_segment_of_rejects_nan_and_reversed_bounds():
    with pytest.raises(ValueError):
        segment_of([1.0, np.nan], (1.0, 2.0))
    with pytest.raises(ValueError):
        segment_of([1.0], (2.0, 1.0))


def test_segment_metrics_hand_computed():
    y = [1, 2, 3, 4, 5, 6]  # bounds (2, 5): low {1, 2}, middle {3, 4, 5}, high {6}
    p = [1.5, 2, 3.5, 4, 4, 6.3]  # |errors| 0.5, 0, 0.5, 0, 1, 0.3
    rows = {r["segment"]: r for r in segment_metrics(y, p)}
    assert list(rows) == ["all", "low", "middle", "high"]
    assert {k: rows[k]["n"] for k in rows} == {"all": 6, "low": 2, "middle": 3, "high": 1}
    assert rows["all"]["mae"] == pytest.approx(2.3 / 6)
    assert rows["low"]["mae"] == pytest.approx(0.25)
    assert rows["middle"]["mae"] == pytest.approx(0.5)
    assert rows["high"]["mae"] == pytest.approx(0.3)
    # low: two increasing pairs -> both correlations 1
    assert rows["low"]["plcc"] == pytest.approx(1.0) and rows["low"]["srocc"] == pytest.approx(1.0)
    # middle: y [3, 4, 5], p [3.5, 4, 4]; deviations [-1, 0, 1] vs ∝ [-1, .5, .5] -> 1.5 / sqrt(2 * 1.5) = sqrt(3)/2
    assert rows["middle"]["plcc"] == pytest.approx(math.sqrt(3) / 2)
    assert rows["middle"]["srocc"] == pytest.approx(math.sqrt(3) / 2)  # ranks [1, 2.5, 2.5]: same shape
    # high: a single image -> correlations undefined
    assert math.isnan(rows["high"]["plcc"]) and math.isnan(rows["high"]["srocc"])
    assert set(rows["all"]) == {"segment", "n", "mae", "plcc", "srocc"}


def test_segment_metrics_explicit_bounds_and_dropped_pairs():
    y = [1, 2, 3, 4, 5, 6]
    p = [1.5, 2, 3.5, np.nan, 4, 6.3]
    # bounds from all of y_true (2, 5) even though the pair (4, NaN) is dropped
    rows = {r["segment"]: r for r in segment_metrics(y, p)}
    assert rows["middle"]["n"] == 2 and rows["middle"]["mae"] == pytest.approx(0.75)
    assert rows["all"]["n"] == 5
    # explicit bounds (3, 4): low {1, 2, 3}, middle {4}, high {5, 6}
    rows = {r["segment"]: r for r in segment_metrics([1, 2, 3, 4, 5, 6], [1.5, 2, 3.5, 4, 4, 6.3], (3.0, 4.0))}
    assert [rows[s]["n"] for s in SEGMENTS] == [3, 1, 2]
    assert rows["low"]["mae"] == pytest.approx(1.0 / 3)
    assert rows["high"]["mae"] == pytest.approx(0.65)


def test_empty_segment_gives_zero_and_nan_without_warnings():
    # ties: [1, 1, 1, 1, 5] -> q20 = 1, q80 = 1 + 0.2 * 4 = 1.8; the four 1s are "low", 5 is "high"
    y, p = [1, 1, 1, 1, 5], [1, 2, 1, 1, 4]
    assert segment_bounds(y) == pytest.approx((1.0, 1.8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = {r["segment"]: r for r in segment_metrics(y, p)}
    assert rows["middle"]["n"] == 0
    assert all(math.isnan(rows["middle"][k]) for k in ("mae", "plcc", "srocc"))
    assert rows["low"]["n"] == 4 and rows["low"]["mae"] == pytest.approx(0.25)
    assert rows["high"]["n"] == 1 and rows["high"]["mae"] == pytest.approx(1.0)


def test_segment_metrics_length_mismatch():
    with pytest.raises(ValueError):
        segment_metrics([1, 2, 3], [1, 2])


def test_plot_apds_surface_with_nan_and_inf_cells():
    grid = pl.DataFrame(
        {
            "beta": [1.0, 1.0, 0.5, 0.5, 2.0, 2.0],
            "t": [0.3, 0.1, 0.3, 0.1, 0.3, 0.1],
            "mae": [0.41, 0.52, np.inf, 0.47, np.nan, 0.60],
            "kept_fraction": [0.35, 0.8, 0.0, 0.9, 0.0, 1.0],
        }
    )
    fig = plot_apds_surface(grid, chosen=(1.0, 0.3), title="APDS")
    assert len(fig.axes) == 2  # heatmap + colorbar
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.5", "1", "2"]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 4 and "0.41\n35%" in texts  # the inf and NaN cells are blank
    mask = np.ma.getmaskarray(ax.images[0].get_array())
    assert mask.tolist() == [[False, True], [False, False], [False, True]]  # rows beta 0.5, 1, 2
    outline = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(outline) == 1 and outline[0].get_xy() == (0.5, 0.5)  # t = 0.3 column, beta = 1 row
    assert len(plot_apds_surface(grid, chosen=None, title="no choice").axes) == 2
    with pytest.raises(ValueError):
        plot_apds_surface(grid, chosen=(9.0, 0.3), title="bad")


def test_plot_apds_surface_all_cells_empty():
    grid = pl.DataFrame({"beta": [1.0], "t": [0.5], "mae": [np.inf], "kept_fraction": [0.0]})
    fig = plot_apds_surface(grid, chosen=(1.0, 0.5), title="nothing kept")
    assert len(fig.axes) == 2 and len(fig.axes[0].texts) == 0


def test_plot_long_tail_scatter_panels_and_titles():
    y = np.array([1, 2, 3, 4, 5, 6], dtype=float)
    preds = {"plain expert": [1.5, 2, 3.5, 4, 4, 6.3], "ELTA": y + 0.1}
    fig = plot_long_tail_scatter(y, preds, title="long tail")
    assert len(fig.axes) == 2
    first = fig.axes[0]
    assert "plain expert" in first.get_title() and "low 0.25" in first.get_title() and "high 0.30" in first.get_title()
    assert len(first.collections) == 3  # one scatter per segment
    assert [t.get_text() for t in first.get_legend().get_texts()][:3] == ["low (n=2)", "middle (n=3)", "high (n=1)"]
    assert len(plot_long_tail_scatter(y, {"only": y}, title="one", bounds=(3.0, 4.0)).axes) == 1


def test_plot_segment_mae_bars():
    table = pl.DataFrame(
        {
            "variant": ["plain", "plain", "plain", "plain", "ELTA", "ELTA", "ELTA", "ELTA"],
            "segment": ["all", "high", "low", "middle", "all", "low", "middle", "high"],
            "mae": [0.5, 0.9, 0.8, 0.3, 0.45, 0.6, 0.35, 0.7],
        }
    )
    fig = plot_segment_mae(table, title="MAE per segment")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["low", "middle", "high"]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.8, 0.3, 0.9, 0.6, 0.35, 0.7])  # "all" ignored, segments in order
    # several rows per (variant, segment), e.g. one per expert: the bar is their mean
    per_expert = pl.concat(
        [table.with_columns(expert=pl.lit("a")), table.with_columns(expert=pl.lit("b"), mae=pl.col("mae") + 0.2)]
    )
    heights = [p.get_height() for p in plot_segment_mae(per_expert, title="x").axes[0].patches]
    assert heights == pytest.approx([0.9, 0.4, 1.0, 0.7, 0.45, 0.8])
