"""The REAL-CUR and AADB writers: their files read back through the adapters, every image is
rated by a held-out person, their people's taste is a mix of the six criteria, and they never
shift the six other sources' bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from aestimo.data.sources import read_source
from aestimo.data.world import WorldConfig, generate_world, read_truth, smoke_config
from aestimo.data.world.latents import SOURCES
from aestimo.data.world.truth import Truth
from aestimo.data.world.writers import aadb as aadb_writer
from aestimo.data.world.writers import real_cur as real_cur_writer

NEW = ("real_cur", "aadb")


def _read(root, kind):
    t = read_source(kind, root / kind)  # strict: every image present, any bad row raises
    assert t.dropped.height == 0
    return t


def test_real_cur_reads_back(smoke_world):
    root, manifest = smoke_world
    cfg, counts = smoke_config(), manifest["counts"]["real_cur"]
    t = _read(root, "real_cur")
    assert t.images.height == t.ratings.height == counts["images"]
    assert t.ratings["rater_id"].n_unique() == cfg.real_cur_users == counts["test_raters"]
    per = t.ratings.group_by("rater_id").len()["len"]
    assert per.min() >= cfg.real_cur_album_min and per.max() <= cfg.real_cur_album_max
    s = t.ratings["score"]
    assert set(s.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0} and 2.5 < s.mean() < 3.8
    assert (root / "real_cur/test_list.csv").read_text().splitlines()[0] == "worker,image_name,score"
    # the image folder is named by the rating
    row = pl.read_csv(root / "real_cur/test_list.csv").row(0, named=True)
    assert (root / "real_cur/images" / row["worker"] / str(row["score"]) / row["image_name"]).is_file()


def test_aadb_reads_back_with_raters(smoke_world):
    root, manifest = smoke_world
    cfg, counts = smoke_config(), manifest["counts"]["aadb"]
    t = _read(root, "aadb")
    assert t.images.height == counts["images"] == cfg.aadb_images
    assert t.ratings.height == counts["ratings"] == cfg.aadb_images * cfg.aadb_raters_per_image
    assert t.ratings["rater_id"].null_count() == 0
    assert set(t.ratings["score"].unique()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    g = t.generic_scores
    assert (g["n_votes"] == cfg.aadb_raters_per_image).all() and g["dist"].null_count() == 0
    # the label files' score is the mean of the per-rater ratings on the 0..1 scale
    means = t.ratings.group_by("image_id").agg(pl.col("score").mean().alias("m"))
    both = g.join(means, on="image_id")
    assert ((both["mean"] - both["m"]).abs() < 1e-3).all()
    assert len([c for c in g.columns if c.startswith("attr_")]) == 11
    assert (t.official_splits["split"] == "test").sum() == counts["official_test_images"]


def test_every_image_is_rated_by_a_held_out_person(smoke_world):
    root, _ = smoke_world
    cfg = smoke_config()
    raters = read_truth(root)["raters"]
    for kind in NEW:
        t = _read(root, kind)
        held = raters.filter((pl.col("source") == kind) & pl.col("is_test"))["rater_id"]
        theirs = t.ratings.filter(pl.col("rater_id").is_in(held.implode()))
        assert set(theirs["image_id"]) == set(t.images["image_id"]), kind
        n = t.ratings.group_by("rater_id").len()
        if kind == "aadb":  # the held-out are exactly the raters with >= min HITs of ratings
            heavy = n.filter(pl.col("len") >= cfg.aadb_test_hits_min * cfg.aadb_images_per_hit)["rater_id"]
            assert set(heavy) == set(held) and len(held) == cfg.aadb_test_raters


def test_people_mix_the_criteria(smoke_world):
    root, _ = smoke_world
    r = read_truth(root)["raters"]
    w = lambda src: r.filter(pl.col("source") == src).select(f"w_{s}" for s in SOURCES).to_numpy()  # noqa: E731
    for kind in NEW:
        x = w(kind)
        assert np.allclose(x.sum(1), 1) and x.max(1).max() < 0.9, kind  # never one expert's criterion
        assert x.max(1).mean() < w("flickr_aes").max(1).mean()  # more even than a source's own raters


def test_default_sizes_fit_the_protocol(tmp_path):
    """Writers alone (no rendering) at the default sizes: k = 100 leaves >= 10 query images."""
    cfg, counts = WorldConfig(), {}
    real_cur_writer.write(tmp_path, cfg, Truth(), counts)
    aadb_writer.write(tmp_path, cfg, Truth(), counts)
    rc = pl.read_csv(tmp_path / "real_cur/test_list.csv").group_by("worker").len()["len"]
    assert rc.len() == 14 and rc.min() >= 110
    from aestimo.data.sources.aadb import read_per_rater
    from aestimo.data.sources.check import Checker

    ratings = read_per_rater(tmp_path / "aadb/AllinAll.csv", Checker("aadb"))
    n = ratings.group_by("WorkerId").len()
    heavy = n.filter(pl.col("len") >= 110)
    assert heavy.height == cfg.aadb_test_raters == 20 and heavy["len"].max() <= 200
    covered = ratings.join(heavy, on="WorkerId", how="semi")["imageName"].n_unique()
    assert covered == counts["aadb"]["images"] == 1000


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] in SOURCES}


def test_new_sources_never_shift_the_six(smoke_world, tmp_path):
    root, _ = smoke_world
    other = tmp_path / "resized"
    cfg = WorldConfig.from_dict(smoke_config().to_dict() | {
        "real_cur_users": 3, "aadb_images": 60, "aadb_test_hits_min": 3, "aadb_test_hits_max": 4, "mixed_taste_concentration": 3.0})
    generate_world(other, cfg)
    assert _hashes(other) == _hashes(root)


@pytest.mark.parametrize("bad, name", [({"aadb_images": 45}, "aadb_images"),
                                       ({"aadb_test_raters": 1}, "aadb_test_raters"),
                                       ({"aadb_train_raters": 2}, "aadb_train_raters"),
                                       ({"real_cur_album_min": 50}, "real_cur_album_max")])
def test_impossible_sizes_name_the_parameter(bad, name):
    with pytest.raises(ValueError, match=f"world.{name}:"):
        WorldConfig.from_dict(smoke_config().to_dict() | bad)
