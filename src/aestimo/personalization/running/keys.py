"""How people and their fitted states are named, in one place.

A person is ``<source>:<rater_id>`` to a user (``flickr_aes:AGXT2OHMTWBRS``),
or the bare rater id when it is unambiguous. On disk, a person's file is
``<source>__<rater_id>.safetensors`` (a colon is not portable in file names),
and each fitted state inside it is ``<method>/k<k>/r<repeat>/<tensor>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SEP = "__"
_STATE = re.compile(r"^(?P<method>[^/]+)/k(?P<k>\d+)/r(?P<repeat>\d+)/(?P<tensor>.+)$")


class UnknownPersonError(KeyError):
    """No personalized person matches the reference (or several do)."""

    def __str__(self) -> str:
        return str(self.args[0])


def person_key(source: str, rater_id: str) -> str:
    """The file-name key of a person: ``<source>__<rater_id>``."""
    return f"{source}{SEP}{rater_id}"


def split_person_key(key: str) -> tuple[str, str]:
    """``<source>__<rater_id>`` -> ``(source, rater_id)``."""
    source, sep, rater = key.partition(SEP)
    if not sep:
        raise ValueError(f"'{key}' is not a person key (<source>{SEP}<rater_id>)")
    return source, rater


def parse_person_ref(ref: str) -> tuple[str | None, str]:
    """A user's reference ``source:rater_id`` (or a bare ``rater_id``) -> ``(source or None, rater_id)``."""
    source, _, rater = ref.rpartition(":")
    return (source or None), rater


def match_person(ref: str, keys: Iterable[str]) -> str:
    """The one person key among ``keys`` that ``ref`` names; a clear error when none or several do."""
    keys = list(keys)
    source, rater = parse_person_ref(ref)
    hits = [k for k in keys if split_person_key(k)[1] == rater and (source is None or split_person_key(k)[0] == source)]
    if not hits:
        known = sorted(k.replace(SEP, ":", 1) for k in keys)
        raise UnknownPersonError(
            f"unknown person '{ref}': no personalized coefficients. Personalized people: {', '.join(known[:10])}"
            + (" ..." if len(known) > 10 else "")
        )
    if len(hits) > 1:
        raise UnknownPersonError(f"'{ref}' is ambiguous ({', '.join(h.replace(SEP, ':', 1) for h in hits)}); write it as source:rater_id")
    return hits[0]


def state_key(method: str, k: int, repeat: int, tensor: str) -> str:
    """The key of one tensor of one fitted state: ``<method>/k<k>/r<repeat>/<tensor>``."""
    return f"{method}/k{k}/r{repeat}/{tensor}"


def parse_state_key(key: str) -> tuple[str, int, int, str]:
    """``<method>/k<k>/r<repeat>/<tensor>`` -> ``(method, k, repeat, tensor)``."""
    m = _STATE.match(key)
    if m is None:
        raise ValueError(f"'{key}' is not a state key (<method>/k<k>/r<repeat>/<tensor>)")
    return m["method"], int(m["k"]), int(m["repeat"]), m["tensor"]
