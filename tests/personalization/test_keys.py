"""Person and state keys: written and read in one place."""

import pytest

from aestimo.personalization.running.keys import (
    UnknownPersonError,
    match_person,
    parse_person_ref,
    parse_state_key,
    person_key,
    split_person_key,
    state_key,
)


def test_person_key_roundtrip_keeps_underscores_in_ids():
    key = person_key("para", "A_19895a")
    assert key == "para__A_19895a" and split_person_key(key) == ("para", "A_19895a")
    assert parse_person_ref("para:A1") == ("para", "A1") and parse_person_ref("A1") == (None, "A1")


def test_state_key_roundtrip():
    key = state_key("layerwise_rank", 100, 3, "lambda")
    assert key == "layerwise_rank/k100/r3/lambda" and parse_state_key(key) == ("layerwise_rank", 100, 3, "lambda")
    with pytest.raises(ValueError, match="not a state key"):
        parse_state_key("layerwise_rank/k100/r3")


def test_match_person_by_full_or_bare_id_and_clear_errors():
    keys = ["para__A1", "flickr_aes__W1", "ava__W1"]
    assert match_person("para:A1", keys) == "para__A1" and match_person("A1", keys) == "para__A1"
    with pytest.raises(UnknownPersonError, match="ambiguous"):
        match_person("W1", keys)
    with pytest.raises(UnknownPersonError, match="unknown person 'para:NOBODY'"):
        match_person("para:NOBODY", keys)
