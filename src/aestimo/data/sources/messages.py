"""Building error messages from raw data without trusting it.

Cell values and header names come from the raw files, so they never become
part of a format template (``str.format``, ``pl.format``): messages are
concatenated from literal pieces and values. Long values are cut to
:data:`MAX_SHOWN` characters with an ellipsis, and an empty or null cell is
said to be empty instead of reading ``None``.
"""

from __future__ import annotations

import polars as pl

MAX_SHOWN = 80
ELLIPSIS = "…"
DOCS = "docs/formats.md"  # the only documentation a message points to (in the repository)
EMPTY = "(empty)"


def clip(value: object, limit: int = MAX_SHOWN) -> str:
    """``str(value)`` cut to ``limit`` characters (the last one an ellipsis when cut)."""
    s = str(value)
    return s if len(s) <= limit else s[: limit - 1] + ELLIPSIS


def quoted(value: object, limit: int = MAX_SHOWN) -> str:
    """A raw value for a message: ``'value'`` (cut), or ``(empty)``."""
    if value is None or str(value) == "":
        return EMPTY
    return "'" + clip(value, limit) + "'"


def names(values, limit: int = 200) -> str:
    """Header names listed for a message (each cut, the list cut to ``limit`` characters)."""
    return clip(", ".join(clip(v, 40) for v in values), limit)


def shown(expr: pl.Expr, limit: int = MAX_SHOWN) -> pl.Expr:
    """Expression: a cell for a message, ``'value'`` cut to ``limit`` characters, or ``(empty)``."""
    s = expr.cast(pl.String)
    cut = pl.when(s.str.len_chars() > limit).then(s.str.slice(0, limit - 1) + pl.lit(ELLIPSIS)).otherwise(s)
    return pl.when(s.is_null() | (s == "")).then(pl.lit(EMPTY)).otherwise(pl.lit("'") + cut + pl.lit("'"))


def plain(expr: pl.Expr, limit: int = MAX_SHOWN) -> pl.Expr:
    """Expression: a parsed value (a number, a row number) as text, cut to ``limit``; null reads ``(empty)``."""
    s = expr.cast(pl.String)
    cut = pl.when(s.str.len_chars() > limit).then(s.str.slice(0, limit - 1) + pl.lit(ELLIPSIS)).otherwise(s)
    return cut.fill_null(EMPTY)


def message(*parts: str | pl.Expr) -> pl.Expr:
    """Expression: the parts concatenated; ``str`` parts are literal text, never a template."""
    exprs = [p if isinstance(p, pl.Expr) else pl.lit(p, dtype=pl.String) for p in parts]
    return pl.concat_str(exprs)
