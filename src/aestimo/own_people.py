"""The people a project can score, as a user names them (``source:rater_id``): list them, show
one, remove one made with ``aestimo personalize`` (the ``aestimo people`` command), and the
closest ids when a reference names nobody.

What each person is comes from their coefficients file's header alone (the safetensors
metadata and tensor names; no tensor is read): their source, the method `aestimo score`
deploys, the ks and repeats fitted per method, and for one's own people the ratings file and
scale. When they were personalized is the file's modification time. The file's on-disk name
(``<source>__<rater_id>``, :mod:`aestimo.personalization.running.keys`) is never shown.

No Kedro here: :mod:`aestimo.console` opens the project and hands over its catalog.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from safetensors import safe_open

from aestimo.data.scales import SCALES, USER_SOURCE
from aestimo.personalization.running.keys import UnknownPersonError, match_person, parse_person_ref, parse_state_key, split_person_key

#: A person's kind: one's own (``own:NAME``, from a ratings file) or one of the run's held-out people.
OWN, HELD_OUT = "own", "held-out"

#: How each catalog entry's people were personalized.
HOW = {
    "user_coefficients": {OWN: "aestimo personalize", HELD_OUT: "kedro run (held-out person)"},
    "new_people_coefficients": {OWN: "kedro run (new_people_ratings file)", HELD_OUT: "kedro run (new_people_ratings file)"},
}


def user_id(key: str) -> str:
    """A person's id as a user writes it, from the on-disk key: ``<source>__<id>`` -> ``<source>:<id>``."""
    source, rater = split_person_key(key)
    return f"{source}:{rater}"


@dataclass(frozen=True)
class Person:
    """One personalized person of a project, as read from their coefficients file's header."""

    id: str  # source:rater_id
    source: str
    dataset: str  # the catalog entry that holds them
    path: Path = field(repr=False)  # their file: for reading and removing, never shown
    modified: datetime
    method: str  # the method `aestimo score` deploys by default
    fitted: dict[str, tuple[tuple[int, ...], int]]  # method -> (the ks of its λ, repeats per k)
    meta: dict = field(repr=False)

    @property
    def kind(self) -> str:
        return OWN if self.source == USER_SOURCE else HELD_OUT

    @property
    def how(self) -> str:
        return HOW.get(self.dataset, {}).get(self.kind, self.dataset)

    @property
    def ks(self) -> tuple[int, ...]:
        """The ks of the deployed method's λ (`aestimo score --k`; the largest by default)."""
        return self.fitted.get(self.method, ((), 0))[0]

    @property
    def removable(self) -> bool:
        """Only the people `aestimo personalize` made: the run writes the others again."""
        return self.kind == OWN and self.dataset == "user_coefficients"

    @property
    def scale(self) -> tuple[float, float] | None:
        """The person's rating scale: their own (from their ratings file) or their source's."""
        if self.meta.get("scale"):
            lo, hi = self.meta["scale"]
            return float(lo), float(hi)
        known = SCALES.get(self.source)
        return (known.lo, known.hi) if known else None


def read_person(key: str, dataset: str, path: Path) -> Person:
    """The person stored as ``key`` in ``path``; ``ValueError`` naming the person when the file is unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            names, header = list(f.keys()), f.metadata() or {}
        meta = json.loads(header.get("aestimo", "{}"))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"the coefficients of '{user_id(key)}' ({dataset}) are unreadable: {err}") from err
    ks: dict[str, set[int]] = {}
    repeats: dict[str, set[int]] = {}
    for name in names:
        try:
            method, k, repeat, tensor = parse_state_key(name)
        except ValueError:
            continue
        if tensor == "lambda":
            ks.setdefault(method, set()).add(k)
            repeats.setdefault(method, set()).add(repeat)
    fitted = {m: (tuple(sorted(ks[m])), len(repeats[m])) for m in sorted(ks)}
    source, _ = split_person_key(key)
    return Person(
        id=user_id(key), source=meta.get("source") or source, dataset=dataset, path=path,
        modified=datetime.fromtimestamp(path.stat().st_mtime), method=meta.get("deploy_method") or "layerwise_rank",
        fitted=fitted, meta=meta,
    )


def list_people(files: dict[str, tuple[str, Path]]) -> list[Person]:
    """Every person of ``{key: (dataset, file)}``: one's own first, then by id."""
    people = [read_person(key, dataset, path) for key, (dataset, path) in files.items()]
    return sorted(people, key=lambda p: (p.kind != OWN, p.id.lower()))


def closest(ref: str, ids: Iterable[str], n: int = 3) -> list[str]:
    """The ids (``source:rater_id``) nearest ``ref``: the same rater id under another source if
    there is one, else the nearest spellings (``difflib``, case ignored) of the rater id among the
    people of the ref's source (of the nearest source when it names one nobody has; of every
    source when it names none)."""
    ids = sorted(set(ids))
    source, rater = parse_person_ref(ref)
    exact = [i for i in ids if i.partition(":")[2].lower() == rater.lower()]
    if exact:
        return exact[:n]
    sources = sorted({i.partition(":")[0] for i in ids})
    if source is not None and source not in sources:
        near_source = difflib.get_close_matches(source, sources, n=1)
        source = near_source[0] if near_source else None
    raters: dict[str, list[str]] = {}
    for i in ids:
        if source is None or i.partition(":")[0] == source:
            raters.setdefault(i.partition(":")[2].lower(), []).append(i)
    return [i for r in difflib.get_close_matches(rater.lower(), list(raters), n=n) for i in raters[r]][:n]


def find(ref: str, keys: Iterable[str]) -> str:
    """The one on-disk key among ``keys`` that ``ref`` (``source:rater_id`` or a bare rater id) names.

    :class:`~aestimo.personalization.running.keys.UnknownPersonError` when none does, naming the closest ids
    (or saying how to list them), and when several do (a bare id of two sources)."""
    keys = list(keys)
    source, rater = parse_person_ref(ref)
    named = [k for k in keys if split_person_key(k)[1] == rater and source in (None, split_person_key(k)[0])]
    if not named:
        near = closest(ref, (user_id(k) for k in keys))
        hint = (f"did you mean {_either(near)}?" if near else "no personalized person has that id")
        raise UnknownPersonError(f"unknown person '{ref}': {hint} (`aestimo people` lists the {len(keys)} people of this project)")
    return match_person(ref, keys)


def _either(ids: list[str]) -> str:
    quoted = [f"'{i}'" for i in ids]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# --------------------------------------------------------------------------- what the command prints

COLUMNS = ("ID", "KIND", "PERSONALIZED", "HOW", "K", "METHOD")


def _when(p: Person) -> str:
    return p.modified.strftime("%Y-%m-%d %H:%M")


def _ks(ks: tuple[int, ...]) -> str:
    return ",".join(map(str, ks)) or "-"


def table(people: list[Person]) -> str:
    """The people as aligned columns, one line each under a header (``aestimo people``)."""
    rows = [COLUMNS] + [(p.id, p.kind, _when(p), p.how, _ks(p.ks), p.method) for p in people]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows) + "\n"


def describe(p: Person, folder: Path | str) -> str:
    """One person in full (``aestimo people show ID``): ``name: value`` lines."""
    scale = p.scale
    lines = [
        ("id", p.id),
        ("kind", f"{p.kind} (" + ("one of your own people" if p.kind == OWN else "a test person of the run, held out of the experts' training") + ")"),
        ("personalized", f"{_when(p)}, by {p.how}"),
        ("source", p.source + (f", scale {scale[0]:g}-{scale[1]:g}" if scale else "")),
        ("method", f"{p.method} (what aestimo score uses; --method picks another fitted one)"),
        ("k", f"{_ks(p.ks)} (aestimo score --k; default {p.ks[-1]})" if p.ks else "- (the deployed method was not fitted)"),
    ]
    if p.meta.get("ratings_file"):
        lines.append(("ratings", f"{p.meta.get('ratings_used', '?')} used, from {p.meta['ratings_file']}"))
    lines.append(("fitted", "; ".join(f"{m} (k {_ks(ks)}, {r} repeat{'s' if r != 1 else ''})" for m, (ks, r) in p.fitted.items()) or "-"))
    if p.meta.get("sources"):
        lines.append(("experts", ", ".join(p.meta["sources"])))
    lines += [("stored in", str(folder)), ("score with", f"aestimo score --user {p.id} PHOTOS...")]
    width = max(len(name) for name, _ in lines) + 1
    return "\n".join(f"{name + ':':<{width}} {value}" for name, value in lines) + "\n"
