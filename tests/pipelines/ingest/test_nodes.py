"""Nodes of the ingest pipeline, called as plain functions on tiny tables."""

from __future__ import annotations

import matplotlib.pyplot as plt
import polars as pl
import pytest

from aestimo.data import splits, world
from aestimo.pipelines.ingest import nodes
from aestimo.data.sources.schema import DROPPED_SCHEMA, IMAGES_SCHEMA, RATINGS_SCHEMA


def _images() -> pl.DataFrame:
    rows = [(f"ava:{i}", "ava", f"a/{i}.jpg", None) for i in range(4)]
    rows += [(f"para:{i}", "para", f"p/{i}.jpg", "portrait") for i in range(3)]
    return pl.DataFrame(rows, schema=IMAGES_SCHEMA, orient="row")


def _ratings() -> pl.DataFrame:
    rows = [("ava", f"ava:{i}", None, 5.0 + i / 2, 5.0 + i / 2) for i in range(4)]
    rows += [("para", f"para:{i}", r, 3.0, 3.0) for i in range(3) for r in ("u1", "u2")]
    return pl.DataFrame(rows, schema=RATINGS_SCHEMA, orient="row")


def _generic_splits() -> pl.DataFrame:
    rows = [("ava", "ava:0", "train"), ("ava", "ava:1", "train"), ("ava", "ava:2", "val"), ("ava", "ava:3", "test"),
            ("para", "para:0", "personal"), ("para", "para:1", "personal"), ("para", "para:2", "train")]
    return pl.DataFrame(rows, schema=splits.GENERIC_SPLITS_SCHEMA, orient="row")


def _test_people() -> pl.DataFrame:
    return pl.DataFrame([("para", "u1", 3, "list")], schema=splits.TEST_PEOPLE_SCHEMA, orient="row")


def _skipped() -> pl.DataFrame:
    return pl.DataFrame([("para", "u1", 10, "3 ratings < k + 10 = 20")], schema=splits.SKIPPED_SCHEMA,
                        orient="row")


def _dropped(n: int = 2) -> pl.DataFrame:
    rows = [("ava", "AVA.txt", 3 + i, "c4", "not a whole number") for i in range(n)]
    return pl.DataFrame(rows, schema=DROPPED_SCHEMA, orient="row")


# ----------------------------------------------------------------- ingest_counts


def test_ingest_counts_one_row_per_source():
    out = nodes.ingest_counts(_images(), _ratings(), _generic_splits(), _test_people(), _skipped(), _dropped())
    assert out.columns == ["source", "images", "ratings", "raters", "train", "val", "test", "personal",
                           "held_out_people", "fewshot_skips", "dropped_rows"]
    got = {r["source"]: r for r in out.iter_rows(named=True)}
    assert out["source"].to_list() == ["ava", "para"]
    assert got["ava"] == {"source": "ava", "images": 4, "ratings": 4, "raters": 0, "train": 2, "val": 1,
                               "test": 1, "personal": 0, "held_out_people": 0, "fewshot_skips": 0,
                               "dropped_rows": 2}
    assert got["para"] == {"source": "para", "images": 3, "ratings": 6, "raters": 2, "train": 1, "val": 0,
                           "test": 0, "personal": 2, "held_out_people": 1, "fewshot_skips": 1,
                           "dropped_rows": 0}


def test_ingest_counts_with_empty_side_tables():
    out = nodes.ingest_counts(
        _images(), _ratings(), _generic_splits(),
        pl.DataFrame(schema=splits.TEST_PEOPLE_SCHEMA), pl.DataFrame(schema=splits.SKIPPED_SCHEMA),
        pl.DataFrame(schema=DROPPED_SCHEMA),
    )
    assert out.height == 2
    assert out.select("held_out_people", "fewshot_skips", "dropped_rows").sum().row(0) == (0, 0, 0)


# ----------------------------------------------------------------- plot_score_histograms


def test_plot_score_histograms_one_axis_per_source():
    ratings = pl.concat([
        _ratings(),
        pl.DataFrame([("koniq10k", f"koniq10k:{i}", None, 1.0 + i / 10, 1.0 + i) for i in range(10)],
                     schema=RATINGS_SCHEMA, orient="row"),
        pl.DataFrame([("spaq", f"spaq:{i}", None, 10.0 * i, 1.0 + i) for i in range(10)],
                     schema=RATINGS_SCHEMA, orient="row"),
    ])
    fig = nodes.plot_score_histograms(ratings)
    try:
        assert isinstance(fig, plt.Figure)
        shown = [ax for ax in fig.axes if ax.axison]
        assert len(shown) == 4
        titles = [ax.get_title() for ax in shown]
        assert [t.split(" ")[0] for t in titles] == ["ava", "koniq10k", "para", "spaq"]
        assert "per-rater" in titles[2] and "per-image" in titles[0]
        assert all(ax.patches for ax in shown)  # every axis holds a histogram
    finally:
        plt.close(fig)


def test_plot_score_histograms_single_source():
    fig = nodes.plot_score_histograms(_ratings().filter(pl.col("source") == "para"))
    try:
        assert len(fig.axes) == 1
    finally:
        plt.close(fig)


# ----------------------------------------------------------------- write_ingest_report


def test_write_ingest_report_contents():
    counts = nodes.ingest_counts(_images(), _ratings(), _generic_splits(), _test_people(), _skipped(), _dropped())
    stats = pl.DataFrame({"name": ["vote_mean", "mos_sd"], "source": ["ava", "ava"], "value": [5.4, 0.1234567],
                          "target_lo": [5.2, 0.5], "target_hi": [5.6, 0.95], "ok": [True, False]})
    text = nodes.write_ingest_report(counts, stats, _skipped())
    assert text.startswith("# Ingest report")
    assert "## Counts per source" in text
    assert "| source | images | ratings |" in text
    assert "| para | 3 | 6 | 2 |" in text
    assert "score_histograms.png" in text
    assert "## Synthetic world: realism statistics" in text
    assert "1 of 2 statistics inside their target ranges." in text
    assert "| mos_sd | ava | 0.123 |" in text  # floats with three decimals
    assert "## People skipped for few-shot" in text
    assert "3 ratings < k + 10 = 20" in text


def test_write_ingest_report_without_world_or_skips():
    counts = nodes.ingest_counts(_images(), _ratings(), _generic_splits(), _test_people(),
                                 pl.DataFrame(schema=splits.SKIPPED_SCHEMA), _dropped(0))
    text = nodes.write_ingest_report(counts, pl.DataFrame(), pl.DataFrame(schema=splits.SKIPPED_SCHEMA))
    assert "## Counts per source" in text
    assert "realism statistics" not in text
    assert "skipped" not in text


# ----------------------------------------------------------------- world_config / ensure_world


def test_world_config_smoke_preset():
    cfg = nodes.world_config({"preset": "smoke", "seed": 7})
    assert cfg.seed == 7
    for key, value in world.SMOKE_OVERRIDES.items():
        assert getattr(cfg, key) == value
    assert cfg != nodes.world_config({"seed": 7})  # the default world is larger


def test_world_config_explicit_values_win_over_preset():
    cfg = nodes.world_config({"preset": "smoke", "image_size": 48})
    assert cfg.image_size == 48
    assert cfg.ava_images == world.SMOKE_OVERRIDES["ava_images"]


@pytest.mark.parametrize("preset", [None, "default"])
def test_world_config_default_preset(preset):
    raw = {"seed": 3} if preset is None else {"seed": 3, "preset": preset}
    assert nodes.world_config(raw) == world.WorldConfig.from_dict({"seed": 3})


def test_world_config_unknown_preset():
    with pytest.raises(ValueError, match=r"ingest\.world\.preset.*'huge'"):
        nodes.world_config({"preset": "huge"})


def test_world_config_does_not_mutate_params():
    raw = {"preset": "smoke"}
    nodes.world_config(raw)
    assert raw == {"preset": "smoke"}


def test_world_config_unknown_key_is_named():
    with pytest.raises(ValueError, match="no_such_knob"):
        nodes.world_config({"no_such_knob": 1})


def test_ensure_world_without_synthetic_sources(tmp_path):
    params = {"world_root": str(tmp_path / "w"), "sources": {"ava": {"root": str(tmp_path / "ava")}}}
    manifest, latents, raters, utilities = nodes.ensure_world(params)
    assert manifest == {"synthetic": False}
    assert latents.height == raters.height == utilities.height == 0
    assert not (tmp_path / "w").exists()


def test_nodes_reject_bad_parameters():
    with pytest.raises(ValueError, match=r"ingest\.on_bad_rows"):
        nodes.read_sources({"sources": {}, "on_bad_rows": "skip"}, {})
