"""Nodes of the ``ingest`` pipeline: thin wrappers over aestimo.data.world, aestimo.data.sources and aestimo.data.splits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from aestimo import config  # noqa: E402
from aestimo.data import splits, world  # noqa: E402
from aestimo.data.scales import SCALES  # noqa: E402
from aestimo.data.sources import read_source  # noqa: E402
from aestimo.data.sources.schema import (  # noqa: E402
    DROPPED_SCHEMA,
    GENERIC_SCORES_SCHEMA,
    IMAGES_SCHEMA,
    OFFICIAL_SPLITS_SCHEMA,
    RATINGS_SCHEMA,
    USER_PROFILES_SCHEMA,
)

log = logging.getLogger(__name__)


def ensure_world(params: dict[str, Any]) -> tuple[dict, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Generate the synthetic world when a configured source lives in it and it is missing.

    Returns the world's manifest and its hidden truth (image latents, raters,
    noise-free utilities), which only evaluation reads.
    """
    p = config.parse("ingest", params)
    if not any(s.synthetic for s in p.active_sources.values()):
        log.info("No synthetic source configured: the synthetic world is not generated.")
        empty = pl.DataFrame()
        return {"synthetic": False}, empty, empty, empty
    root = Path(p.world_root)
    cfg = world_config(p.world)
    if world.world_exists(root, cfg):
        log.info("Synthetic world found at %s", root)
        manifest = world.read_manifest(root)
    else:
        log.info("Generating the synthetic world at %s (seed %d)", root, cfg.seed)
        manifest = world.generate_world(root, cfg)
    truth = world.read_truth(root)
    summary = {k: manifest[k] for k in ("seed", "config", "counts") if k in manifest}
    summary.update(synthetic=True, root=str(root), n_files=len(manifest.get("files", [])))
    return summary, truth["image_latents"], truth["raters"], truth["utilities"]


def world_config(raw: dict[str, Any]) -> world.WorldConfig:
    """``ingest.world`` as a WorldConfig; ``preset: smoke`` starts from the tiny test world."""
    raw = dict(raw)
    preset = raw.pop("preset", None)
    if preset not in (None, "default", "smoke"):
        raise ValueError(f"parameter 'ingest.world.preset' must be 'default' or 'smoke', got {preset!r}")
    base = dict(world.SMOKE_OVERRIDES) if preset == "smoke" else {}
    return world.WorldConfig.from_dict(base | raw)


def read_sources(params: dict[str, Any], world_manifest: dict) -> tuple[pl.DataFrame, ...]:
    """Read every configured source through its adapter into the canonical tables."""
    del world_manifest  # an input only so that the world exists before it is read
    p = config.parse("ingest", params)
    parts: dict[str, list[pl.DataFrame]] = {
        k: [] for k in ("images", "ratings", "generic_scores", "user_profiles", "official_splits", "dropped")
    }
    for kind, src in p.active_sources.items():
        tables = read_source(kind, Path(src.root), require_images=src.require_images, on_bad_rows=p.on_bad_rows)
        log.info(
            "%s: %d images, %d ratings, %d dropped rows",
            kind,
            tables.images.height,
            tables.ratings.height,
            tables.dropped.height,
        )
        for name in parts:
            parts[name].append(getattr(tables, name))
    schemas = {
        "images": IMAGES_SCHEMA,
        "ratings": RATINGS_SCHEMA,
        "generic_scores": GENERIC_SCORES_SCHEMA,
        "user_profiles": USER_PROFILES_SCHEMA,
        "official_splits": OFFICIAL_SPLITS_SCHEMA,
        "dropped": DROPPED_SCHEMA,
    }
    out = []
    for name, schema in schemas.items():
        frames = [f for f in parts[name] if f.height] or [pl.DataFrame(schema=schema)]
        out.append(pl.concat(frames, how="diagonal_relaxed"))
    dup = out[0].filter(pl.col("image_id").is_duplicated())
    if dup.height:
        raise ValueError(f"image ids repeat across sources: {dup['image_id'].head(5).to_list()}")
    return tuple(out)


def select_test_people(ratings: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """Held-out people per source: from the configured list file, else by the rule."""
    p = config.parse("ingest", params)
    frames = []
    for kind, src in p.active_sources.items():
        tu = src.test_users
        if tu is None:
            continue
        listed = splits.read_user_list(Path(src.root) / tu.file) if tu.file else None
        people = splits.select_test_users(
            ratings,
            kind,
            listed=listed,
            count=tu.count,
            min_ratings=tu.min_ratings,
            max_ratings=tu.max_ratings,
            seed=tu.seed,
        )
        log.info("%s: %d held-out people (%s)", kind, people.height, "list" if listed else "rule")
        frames.append(people)
    return pl.concat(frames) if frames else pl.DataFrame(schema=splits.TEST_PEOPLE_SCHEMA)


def make_generic_splits(
    images: pl.DataFrame,
    ratings: pl.DataFrame,
    official_splits: pl.DataFrame,
    test_people: pl.DataFrame,
    params: dict[str, Any],
) -> pl.DataFrame:
    p = config.parse("ingest", params).generic_splits
    return splits.generic_splits(
        images,
        ratings,
        official_splits,
        test_people,
        val_fraction=p.val_fraction,
        test_fraction=p.test_fraction,
        seed=p.seed,
    )


def make_fewshot_splits(
    ratings: pl.DataFrame, test_people: pl.DataFrame, params: dict[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    p = config.parse("ingest", params).fewshot
    return splits.fewshot_splits(
        ratings, test_people, ks=p.ks, repeats=p.repeats, min_query=p.min_query, seed=p.seed
    )


def ingest_counts(
    images: pl.DataFrame,
    ratings: pl.DataFrame,
    generic_splits: pl.DataFrame,
    test_people: pl.DataFrame,
    fewshot_skipped: pl.DataFrame,
    dropped: pl.DataFrame,
) -> pl.DataFrame:
    """One row per source: images, ratings, raters, split sizes, held-out people, dropped rows."""
    base = images.group_by("source").agg(pl.len().alias("images"))
    r = ratings.group_by("source").agg(
        pl.len().alias("ratings"), pl.col("rater_id").drop_nulls().n_unique().alias("raters")
    )
    s = generic_splits.pivot(on="split", index="source", values="image_id", aggregate_function="len")
    for col in ("train", "val", "test", "personal"):
        if col not in s.columns:
            s = s.with_columns(pl.lit(0).alias(col))
    t = test_people.group_by("source").agg(pl.len().alias("held_out_people"))
    sk = fewshot_skipped.group_by("source").agg(pl.len().alias("fewshot_skips"))
    d = dropped.group_by("source").agg(pl.len().alias("dropped_rows"))
    out = base
    for other in (r, s.select("source", "train", "val", "test", "personal"), t, sk, d):
        out = out.join(other, on="source", how="left")
    return out.fill_null(0).sort("source")


def plot_score_histograms(ratings: pl.DataFrame) -> plt.Figure:
    """One histogram per source of its ratings, on the source's own scale."""
    sources = sorted(ratings["source"].unique().to_list())
    n = max(len(sources), 1)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, source in zip(axes.flat, sources):
        x = ratings.filter(pl.col("source") == source)["score"].to_numpy()
        sc = SCALES.get(source)
        bins = 30
        if sc is not None and sc.step:
            edges = [sc.lo - sc.step / 2 + i * sc.step for i in range(int(round((sc.hi - sc.lo) / sc.step)) + 2)]
            bins = edges
        ax.hist(x, bins=bins, color="#4c72b0", edgecolor="white")
        who = "per-rater" if ratings.filter(pl.col("source") == source)["rater_id"].null_count() == 0 else "per-image"
        ax.set_title(f"{source} ({len(x)} {who} scores)", fontsize=10)
        ax.set_xlabel("score")
    for ax in list(axes.flat)[len(sources):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


WORLD_STATISTICS_SCHEMA = {
    "name": pl.String,
    "source": pl.String,
    "value": pl.Float64,
    "target_lo": pl.Float64,
    "target_hi": pl.Float64,
    "ok": pl.Boolean,
}


def compute_world_statistics(
    params: dict[str, Any], world_manifest: dict, ingest_dropped_rows: pl.DataFrame
) -> pl.DataFrame:
    """Realism statistics of the synthetic world (empty when none is configured).

    Runs after the sources are read (so a corrupt raw file is reported by its
    adapter, with file, row and column) and is skipped when rows of the
    world's files were dropped as bad.
    """
    empty = pl.DataFrame(schema=WORLD_STATISTICS_SCHEMA)
    if not world_manifest.get("synthetic", True):
        return empty
    p = config.parse("ingest", params)
    synthetic = [k for k, s in p.active_sources.items() if s.synthetic]
    bad = ingest_dropped_rows.filter(pl.col("source").is_in(synthetic))
    if bad.height:
        log.warning(
            "World statistics skipped: %d rows of the synthetic world's raw files were dropped as bad "
            "(see ingest_dropped_rows).",
            bad.height,
        )
        return empty
    return world.world_statistics(Path(p.world_root))


def write_ingest_report(
    counts: pl.DataFrame, world_statistics: pl.DataFrame, fewshot_skipped: pl.DataFrame
) -> str:
    """The ingest report as Markdown: counts per source, world statistics, skipped people."""
    lines = ["# Ingest report", "", "## Counts per source", "", _markdown_table(counts), ""]
    lines += ["Score histograms: `score_histograms.png` beside this file.", ""]
    if world_statistics.height:
        ok = world_statistics["ok"].sum() if "ok" in world_statistics.columns else None
        lines += ["## Synthetic world: realism statistics", ""]
        if ok is not None:
            lines += [f"{ok} of {world_statistics.height} statistics inside their target ranges.", ""]
        lines += [_markdown_table(world_statistics), ""]
    if fewshot_skipped.height:
        lines += ["## People skipped for few-shot", "", _markdown_table(fewshot_skipped), ""]
    return "\n".join(lines)


def _markdown_table(df: pl.DataFrame) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join([head, sep, *body])


