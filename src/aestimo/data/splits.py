"""Generic train/val/test splits per source and few-shot splits per held-out person.

Everything here is a pure function of the canonical tables and a seed, so the
splits are reproducible and written to the catalog (no unpublished splits).
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np
import polars as pl

from aestimo.data.sources.schema import RawDataError

log = logging.getLogger(__name__)

GENERIC_SPLITS_SCHEMA = {"source": pl.String, "image_id": pl.String, "split": pl.String}
FEWSHOT_SCHEMA = {
    "source": pl.String,
    "rater_id": pl.String,
    "k": pl.Int64,
    "repeat": pl.Int64,
    "seed": pl.Int64,
    "image_id": pl.String,
    "role": pl.String,  # support / query
}
TEST_PEOPLE_SCHEMA = {
    "source": pl.String,
    "rater_id": pl.String,
    "n_ratings": pl.Int64,
    "selected_by": pl.String,
}
SKIPPED_SCHEMA = {"source": pl.String, "rater_id": pl.String, "k": pl.Int64, "reason": pl.String}


def stable_seed(*parts: object) -> int:
    """A seed that depends only on the given values (not on dict or row order)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode()) & 0x7FFFFFFF


def read_user_list(path: Path) -> list[str]:
    """One rater id per line; blank lines and ``#`` comments ignored."""
    if not path.exists():
        raise FileNotFoundError(
            f"test-user list {path} does not exist: fix 'test_users.file' in parameters_ingest.yml"
        )
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line)
    if not ids:
        raise RawDataError(path, None, None, "the test-user list is empty")
    return ids


def select_test_users(
    ratings: pl.DataFrame,
    source: str,
    *,
    listed: list[str] | None,
    count: int | None,
    min_ratings: int,
    max_ratings: int | None,
    seed: int,
) -> pl.DataFrame:
    """Held-out people of one source: the listed ids, else those whose number of
    ratings lies in ``[min_ratings, max_ratings]`` (``count`` of them, drawn with
    ``seed``)."""
    per_rater = (
        ratings.filter((pl.col("source") == source) & pl.col("rater_id").is_not_null())
        .group_by("rater_id")
        .agg(pl.len().cast(pl.Int64).alias("n_ratings"))
        .sort("rater_id")
    )
    if listed is not None:
        known = set(per_rater["rater_id"].to_list())
        unknown = [r for r in listed if r not in known]
        if unknown:
            raise ValueError(
                f"{source}: test users {unknown[:5]} (of {len(unknown)}) have no ratings in this source: "
                "check the test-user list against the rating file"
            )
        chosen = per_rater.filter(pl.col("rater_id").is_in(listed))
        how = "list"
    else:
        cond = pl.col("n_ratings") >= min_ratings
        if max_ratings is not None:
            cond &= pl.col("n_ratings") <= max_ratings
        eligible = per_rater.filter(cond)
        if count is not None and eligible.height > count:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(eligible.height, size=count, replace=False))
            eligible = eligible[pick]
        chosen = eligible
        how = "rule"
    return chosen.with_columns(
        pl.lit(source).alias("source"), pl.lit(how).alias("selected_by")
    ).select(list(TEST_PEOPLE_SCHEMA))


def generic_splits(
    images: pl.DataFrame,
    ratings: pl.DataFrame,
    official: pl.DataFrame,
    test_people: pl.DataFrame,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> pl.DataFrame:
    """train / val / test / personal per image.

    Images rated by any held-out person are ``personal``: no expert ever trains,
    validates or is tested on them. Otherwise the official split is used where
    the data set has one (a validation part is drawn from its train part when it
    has none); sources without one get a seeded random split.
    """
    personal = (
        ratings.join(test_people.select("source", "rater_id"), on=["source", "rater_id"], how="semi")
        .select("image_id")
        .unique()
    )
    out = []
    for source in sorted(images["source"].unique().to_list()):
        imgs = images.filter(pl.col("source") == source).select("source", "image_id").sort("image_id")
        off = official.filter(pl.col("source") == source).select("image_id", "split")
        rng = np.random.default_rng(stable_seed(seed, source))
        if off.height:
            tab = imgs.join(off, on="image_id", how="left").with_columns(
                pl.col("split").fill_null("train")
            )
        else:
            u = rng.random(imgs.height)
            split = np.where(
                u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train")
            )
            tab = imgs.with_columns(pl.Series("split", split))
        out.append(tab)
    tab = pl.concat(out) if out else pl.DataFrame(schema=GENERIC_SPLITS_SCHEMA)
    tab = tab.with_columns(
        pl.when(pl.col("image_id").is_in(personal["image_id"].implode()))
        .then(pl.lit("personal"))
        .otherwise(pl.col("split"))
        .alias("split")
    )
    return _fill_empty_parts(tab, val_fraction, test_fraction, seed).select(list(GENERIC_SPLITS_SCHEMA))


def _fill_empty_parts(tab: pl.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> pl.DataFrame:
    """A source whose official val or test part is empty once held-out people's images are
    removed (PARA's GIAA test images are its test users' images) gets one drawn from train.
    A source whose images are all held-out people's (REAL-CUR, AADB: people only, no expert)
    has no train part and stays all ``personal``."""
    parts = []
    for source in tab["source"].unique(maintain_order=True).to_list():
        t = tab.filter(pl.col("source") == source)
        if not (t["split"] == "train").any():
            parts.append(t)
            continue
        for part, frac in (("test", test_fraction), ("val", val_fraction)):
            if frac > 0 and not (t["split"] == part).any():
                rng = np.random.default_rng(stable_seed(seed, source, part))
                draw = pl.Series(rng.random(t.height) < frac)
                t = t.with_columns(
                    pl.when((pl.col("split") == "train") & draw).then(pl.lit(part)).otherwise(pl.col("split")).alias("split")
                )
                log.info("%s: no official %s images outside held-out people's; drew %s from train", source, part, part)
        parts.append(t)
    return pl.concat(parts) if parts else tab


def fewshot_splits(
    ratings: pl.DataFrame,
    test_people: pl.DataFrame,
    *,
    ks: list[int],
    repeats: int,
    min_query: int,
    seed: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Support / query image ids per held-out person × k × repeat, seeded.

    A person with fewer than ``k + min_query`` ratings is skipped for that k,
    with the reason logged and returned in the second table.
    """
    rows: dict[str, list] = {c: [] for c in FEWSHOT_SCHEMA}
    skipped: dict[str, list] = {c: [] for c in SKIPPED_SCHEMA}
    people = ratings.join(test_people.select("source", "rater_id"), on=["source", "rater_id"], how="semi")
    for (source, rater), group in sorted(
        people.group_by(["source", "rater_id"]), key=lambda g: (g[0][0], g[0][1])
    ):
        ids = np.array(sorted(group["image_id"].to_list()))
        for k in ks:
            if len(ids) < k + min_query:
                reason = f"{len(ids)} ratings < k + {min_query} = {k + min_query}"
                log.info("few-shot: skipping %s/%s for k=%d: %s", source, rater, k, reason)
                for c, v in zip(SKIPPED_SCHEMA, (source, rater, k, reason)):
                    skipped[c].append(v)
                continue
            for rep in range(repeats):
                s = stable_seed(seed, source, rater, k, rep)
                perm = np.random.default_rng(s).permutation(len(ids))
                for pos, idx in enumerate(perm):
                    for c, v in zip(
                        FEWSHOT_SCHEMA,
                        (source, rater, k, rep, s, ids[idx], "support" if pos < k else "query"),
                    ):
                        rows[c].append(v)
    return pl.DataFrame(rows, schema=FEWSHOT_SCHEMA), pl.DataFrame(skipped, schema=SKIPPED_SCHEMA)
