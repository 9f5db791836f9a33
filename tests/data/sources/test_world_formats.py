"""The adapters read the synthetic world's raw files (written in the real formats) without a dropped row."""

from __future__ import annotations

import pytest

from aestimo.data.sources import read_source

world = pytest.importorskip("aestimo.data.world")

SOURCES = ["ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq", "real_cur", "aadb"]


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    manifest = world.generate_world(root, world.smoke_config())
    return root, manifest["counts"]


@pytest.mark.parametrize("kind", SOURCES)
def test_reads_the_synthetic_world(smoke_world, kind):
    root, counts = smoke_world
    t = read_source(kind, root / kind)  # strict: every image present, any bad row raises
    assert t.dropped.height == 0
    assert t.images.height == counts[kind]["images"]
    assert t.generic_scores.height == t.images.height
    assert t.generic_scores["mean"].null_count() == 0
    if "ratings" in counts[kind]:
        assert t.ratings.height == counts[kind]["ratings"]
    if "official_test_images" in counts[kind]:
        assert (t.official_splits["split"] == "test").sum() == counts[kind]["official_test_images"]
    if kind in ("ava", "para", "koniq10k", "flickr_aes", "aadb"):
        assert t.generic_scores["dist"].null_count() == 0
    if kind == "para":
        assert t.user_profiles.height == counts[kind]["raters"]
