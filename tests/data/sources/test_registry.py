"""The source registry and read_source's argument checks."""

from __future__ import annotations

import pytest

from aestimo.data.sources import ADAPTERS, available_sources, read_source, register

KINDS = ["aadb", "ava", "eva", "flickr_aes", "koniq10k", "para", "real_cur", "spaq", "tad66k"]


def test_every_format_is_registered():
    assert available_sources() == KINDS
    assert set(ADAPTERS) == set(KINDS)


def test_unknown_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown source kind 'imdb'.*ava.*tad66k"):
        read_source("imdb", tmp_path)


def test_bad_on_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="on_bad_rows"):
        read_source("ava", tmp_path, on_bad_rows="skip")


def test_register_refuses_a_second_adapter_for_a_kind():
    with pytest.raises(ValueError, match="already registered"):
        register("ava")(lambda root, require_images, checker: None)
