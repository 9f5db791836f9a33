"""Rating sources: one adapter per raw data set format, behind one registry.

``read_source(kind, root)`` reads the data set laid out under ``root`` (the
relative paths of docs/formats.md) into the canonical tables of
:mod:`aestimo.data.sources.schema`. Adding a format is one module with a function
decorated by ``@register("<kind>")``; callers never name a format.

>>> tables = read_source("ava", Path("data/01_raw/ava"))  # doctest: +SKIP
>>> tables.generic_scores.head()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from aestimo.data.sources.check import ON_BAD_ROWS, Checker
from aestimo.data.sources.schema import RawDataError, SourceTables

Adapter = Callable[[Path, bool, Checker], SourceTables]

ADAPTERS: dict[str, Adapter] = {}

_MODULES = ("ava", "flickr_aes", "real_cur", "para", "koniq10k", "spaq", "tad66k", "aadb", "eva")


def register(kind: str) -> Callable[[Adapter], Adapter]:
    """Register ``fn(root, require_images, checker) -> SourceTables`` as the adapter of ``kind``."""

    def deco(fn: Adapter) -> Adapter:
        if kind in ADAPTERS and ADAPTERS[kind] is not fn:
            raise ValueError(f"source kind {kind!r} is already registered")
        ADAPTERS[kind] = fn
        return fn

    return deco


def available_sources() -> list[str]:
    """The registered source kinds, sorted."""
    return sorted(ADAPTERS)


def read_source(kind: str, root: Path, require_images: bool = True, on_bad_rows: str = "error") -> SourceTables:
    """Read the raw files of data set ``kind`` under ``root`` into the canonical tables.

    ``require_images``: every rated image must exist as a file that PIL
    identifies as an image from its header (a missing, empty or non-image
    file is a bad row). ``on_bad_rows``: ``"error"`` raises :class:`RawDataError`
    (file, row, column) on the first bad row; ``"drop"`` drops bad rows and
    lists them in ``SourceTables.dropped``. Whole-file problems always raise,
    in both modes: a missing, empty, header-only or non-UTF-8 file, a missing
    or repeated column, most lines with the wrong number of cells, more than
    half of a file's rows unreadable, no usable row, a side file that names
    none of the data set's images (see :mod:`~aestimo.data.sources.read`,
    :mod:`~aestimo.data.sources.check` and each adapter's docstring).
    """
    if kind not in ADAPTERS:
        raise ValueError(f"unknown source kind {kind!r}; known: {', '.join(available_sources())}")
    if on_bad_rows not in ON_BAD_ROWS:
        raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
    checker = Checker(kind, on_bad_rows)
    tables = ADAPTERS[kind](Path(root), require_images, checker)
    checker.finish()  # whole-file problems found by the row checks raise in drop mode too
    return tables


for _m in _MODULES:
    importlib.import_module(f"{__name__}.{_m}")

__all__ = ["ADAPTERS", "RawDataError", "SourceTables", "available_sources", "read_source", "register"]
