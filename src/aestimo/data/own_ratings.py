"""One person's own ratings file: a CSV of image path and score (:func:`parse_ratings` gives the
exact rules), read into :class:`Ratings` with every problem named by file, row and column, and
their images decoded (:func:`load_rated_images`). What `aestimo personalize` and the
``new_people_ratings`` dataset read; personalizing from them is
:mod:`aestimo.personalization.new_person`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aestimo.data.images import load_image
from aestimo.data.scales import COMMON_USER_SCALES, infer_user_scale

#: A person's name: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d*)?)\s*(?:-|–|\.\.|:|to)\s*(-?\d+(?:\.\d*)?)\s*$")
_SCALE_LINE = re.compile(r"^#\s*scale\s*[:=]\s*(?P<scale>.*?)\s*$", re.IGNORECASE)


class RatingsError(ValueError):
    """A ratings file or its ratings cannot make a person; the message names the file, row and column."""


def check_name(name: str) -> str:
    """``name`` when it can name a person (:data:`NAME`), else ``ValueError``."""
    if not NAME.match(name or ""):
        raise ValueError(
            f"'{name}' cannot name a person: use letters, digits, '.', '_' and '-' (starting with a letter "
            "or digit, at most 64 characters)"
        )
    return name


def parse_scale(text: str) -> tuple[float, float]:
    """``"1-5"``, ``"0-100"``, ``"0.5-5"`` (also ``1..5``, ``1:5``, ``1 to 5``) -> ``(lo, hi)``."""
    m = _SCALE.match(str(text))
    if m is None:
        raise ValueError(f"'{text}' is not a scale: write it LO-HI, e.g. 1-5, 1-10, 0-100")
    lo, hi = float(m[1]), float(m[2])
    if not lo < hi:
        raise ValueError(f"scale '{text}': its low end must be below its high end")
    return lo, hi


def format_scale(scale: Sequence[float]) -> str:
    return f"{scale[0]:g}-{scale[1]:g}"


@dataclass(frozen=True)
class Ratings:
    """One person's ratings as read from a file: image paths (resolved), scores, the file's row of
    each, the scale ``(lo, hi)`` and where it came from (``"given"``, ``"stated in the file"``, ``"inferred from the scores"``)."""

    file: str
    paths: list[Path]
    scores: np.ndarray
    rows: list[int]
    scale: tuple[float, float]
    scale_origin: str

    def __len__(self) -> int:
        return len(self.paths)


def read_ratings(path: str | Path, scale: tuple[float, float] | None = None) -> Ratings:
    """Read a ratings file (:func:`parse_ratings`); relative image paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RatingsError(f"{path}: no such ratings file") from None
    except IsADirectoryError:
        raise RatingsError(f"{path}: is a folder, not a ratings file (a CSV of image path, score)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RatingsError(f"{path}: cannot be read as a UTF-8 text file ({err})") from None
    return parse_ratings(text, str(path), path.resolve().parent, scale)


def parse_ratings(text: str, file: str, base: Path, scale: tuple[float, float] | None = None) -> Ratings:
    """One person's ratings from CSV text (``file`` names it in messages; relative paths resolve against ``base``).

    * two comma-separated columns: the image path, then the score (a cell may be quoted);
    * an optional header: the first row is one when its score is not a number and its path does
      not end in an image suffix (``path,score`` is one; ``a.jpg,good`` is a bad row);
    * blank lines and lines starting with ``#`` are skipped; a line ``# scale: LO-HI`` states
      the scale (``scale`` given here wins over it);
    * without a stated scale, the scale is the smallest of 1-5, 1-10, 0-10, 0-100 that holds
      every score (:data:`aestimo.data.scales.COMMON_USER_SCALES`);
    * every problem (a row without two columns, an empty path, a score that is not a finite
      number or lies outside the scale, an image rated twice, no rows at all) raises
      :class:`RatingsError` naming the file, the row (the line number in the file) and the column.
    """
    paths: list[Path] = []
    scores: list[float] = []
    rows: list[int] = []
    first_row_of: dict[Path, int] = {}
    stated: tuple[float, float] | None = None
    seen_data = False
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise RatingsError(f"{file}, row {reader.line_num}: not a valid CSV row ({err})") from None
        row = reader.line_num
        cells = [c.strip() for c in cells]
        while cells and cells[-1] == "":
            cells.pop()  # trailing commas
        if not cells:
            continue
        if cells[0].startswith("#"):
            m = _SCALE_LINE.match(",".join(cells))
            if m is not None:
                if stated is not None:
                    raise RatingsError(f"{file}, row {row}: a second '# scale:' line (one scale per file)")
                try:
                    stated = parse_scale(m["scale"])
                except ValueError as err:
                    raise RatingsError(f"{file}, row {row}: {err}") from None
            continue
        header_like = not seen_data and not cells[0].lower().endswith(_IMAGE_SUFFIXES) and len(cells) >= 2 and _number(cells[1]) is None
        if header_like and len(cells) == 2:
            seen_data = True
            continue
        seen_data = True
        if len(cells) != 2:
            raise RatingsError(
                f"{file}, row {row}: expected 2 columns (image path, score), found {len(cells)}"
                + (" (the columns are separated by commas)" if len(cells) == 1 else "")
            )
        if not cells[0]:
            raise RatingsError(f"{file}, row {row}, column 1 (image path): empty")
        value = _number(cells[1])
        if value is None:
            raise RatingsError(f"{file}, row {row}, column 2 (score): '{cells[1]}' is not a number")
        if not math.isfinite(value):
            raise RatingsError(f"{file}, row {row}, column 2 (score): '{cells[1]}' is not a finite number")
        p = Path(cells[0]).expanduser()
        p = p if p.is_absolute() else base / p
        if p in first_row_of:
            raise RatingsError(f"{file}, row {row}, column 1 (image path): '{cells[0]}' is already rated in row {first_row_of[p]}")
        first_row_of[p] = row
        paths.append(p)
        scores.append(value)
        rows.append(row)
    if not paths:
        raise RatingsError(f"{file}: no ratings (expected rows of image path, score)")
    y = np.asarray(scores, dtype=np.float64)
    if scale is not None:
        lohi, origin = scale, "given"
    elif stated is not None:
        lohi, origin = stated, "stated in the file"
    else:
        inferred = infer_user_scale(y)
        if inferred is None:
            common = ", ".join(format_scale(s) for s in COMMON_USER_SCALES)
            raise RatingsError(
                f"{file}: the scores run from {y.min():g} to {y.max():g}, which none of the common scales "
                f"({common}) holds; state the scale (--scale LO-HI, or a line '# scale: LO-HI' in the file)"
            )
        lohi, origin = (float(inferred[0]), float(inferred[1])), "inferred from the scores"
    lo, hi = lohi
    outside = [i for i, v in enumerate(y) if not lo <= v <= hi]
    if outside:
        i = outside[0]
        more = f" (and {len(outside) - 1} more rows)" if len(outside) > 1 else ""
        raise RatingsError(
            f"{file}, row {rows[i]}, column 2 (score): {y[i]:g} is outside the scale {format_scale(lohi)} ({origin}){more}"
        )
    return Ratings(file, paths, y, rows, (float(lo), float(hi)), origin)


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


@dataclass
class RatedImages:
    """The images of a :class:`Ratings` that could be read (uint8, rows in the file's order), the
    positions of their ratings, and one message per rating whose image could not be read."""

    pixels: torch.Tensor
    used: list[int]
    problems: list[str] = field(default_factory=list)


def load_rated_images(ratings: Ratings, size: int) -> RatedImages:
    """Decode every rated image at ``size × size``; a missing or unreadable one is a problem, not an error."""
    pixels, used, problems = [], [], []
    for i, (p, row) in enumerate(zip(ratings.paths, ratings.rows)):
        try:
            pixels.append(load_image(p, size))
        except FileNotFoundError:
            problems.append(f"{ratings.file}, row {row}, column 1 (image path): {p}: file not found")
            continue
        except Exception as err:  # noqa: BLE001  (PIL raises several types for a file that is no image)
            problems.append(f"{ratings.file}, row {row}, column 1 (image path): {p}: not a readable image ({type(err).__name__})")
            continue
        used.append(i)
    stacked = torch.stack(pixels) if pixels else torch.empty((0, 3, size, size), dtype=torch.uint8)
    return RatedImages(stacked, used, problems)
