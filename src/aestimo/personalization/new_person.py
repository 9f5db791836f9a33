"""Personalize one new person from their own ratings: a table of (image path, score) in, their
fitted state out, in the format of the pipeline's ``user_coefficients`` files.

The person is fitted with the project's **deployed** method (``personalize.deploy_method``,
built through :meth:`aestimo.config.PersonalizeParams.configured_methods`, so its configured
options apply; ``prepare`` then ``fit``, as the pipeline calls them) and nothing else: every
rated image is support, there is no query. The images are decoded once at θ0's cache size into
a small image cache of their own (rows ``0..n-1``, in the file's order), each expert scores them
zero-shot (the merged model at a one-hot λ, which is the expert itself) and θ0's pooled
backbone features are computed for methods that read them. The person's scores are mapped from
their own scale onto the ten template (:func:`aestimo.data.scales.user_scale`).

The result is one :class:`~aestimo.bundle.TensorBundle` keyed ``<method>/k<n>/r0/<tensor>``
with the metadata of :func:`aestimo.personalization.runs.collect` (``sources``, ``names``,
``deploy_method``, ``source``, ``rater_id``) plus ``scale`` (the person's ``[lo, hi]``, which
`aestimo score` maps its scores back onto). The person is ``own:<name>``
(:data:`aestimo.data.scales.USER_SOURCE`), so ``aestimo score --user <name>`` finds them.

A ratings file is a CSV of two columns, image path and score (see :func:`parse_ratings` for the
exact rules). No Kedro here: `aestimo personalize` (:mod:`aestimo.console`) and the
``personalize_new_people`` node are thin calls to these functions.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aestimo.bundle import TensorBundle
from aestimo.data.images import CachedImages, load_image
from aestimo.data.scales import COMMON_USER_SCALES, USER_SOURCE, infer_user_scale, user_scale
from aestimo.models.merged import merge_state
from aestimo.models.inference import embed, predict
from aestimo.models.theta0 import load_scorer, normalisation
from aestimo.personalization.keys import person_key, state_key
from aestimo.personalization.registry import Context, Support

log = logging.getLogger(__name__)

#: Fewer usable ratings than this are refused (a method may ask for more: ``min_support``).
MIN_RATINGS = 10
#: The seed every random choice of the fit draws from (the same file gives the same state).
SEED = 0
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


@torch.no_grad()
def expert_scores(theta0: TensorBundle, task_vectors: TensorBundle, pixels: torch.Tensor, template: torch.Tensor) -> np.ndarray:
    """Each expert's zero-shot score (on ``template``) of cached images ``pixels`` (uint8, at θ0's
    cache size), on their evaluation view: ``(n_experts, N)``, experts in the task vectors' order.

    Expert ``i`` is θ0 + τ_i (the merged model at a one-hot λ; batch-norm statistics are θ0's, as
    every expert kept them), loaded into one plain scorer in turn: the pipeline's
    ``predict_with_experts`` on the expert's own weights, up to float rounding.
    """
    scorer = load_scorer(theta0)
    n = len(task_vectors.meta["sources"])
    crop, norm = int(theta0.meta["input_size"]), normalisation(theta0)
    out = np.empty((n, len(pixels)))
    for i in range(n):
        loaded = scorer.load_state_dict(merge_state(theta0, task_vectors, torch.eye(n)[i]), strict=False)
        if loaded.unexpected_keys:  # the task vectors are not of θ0's architecture
            raise ValueError(f"the task vectors name tensors θ0's scorer lacks: {loaded.unexpected_keys[:5]}")
        out[i] = (predict(scorer, pixels, crop, norm) @ template).double().numpy()
    return out


@dataclass
class NewPerson:
    """A personalized new person: their key (``own__<name>``), their state as a ``user_coefficients``
    bundle, the deployed method's name, how many ratings it learned from, and the ratings left out."""

    key: str
    bundle: TensorBundle
    method: str
    used: int
    problems: list[str] = field(default_factory=list)
    scale_origin: str = "given"  # where the ratings' scale came from (Ratings.scale_origin)
    chosen: dict[str, Any] = field(default_factory=dict)  # the settings chosen on validation people it was fitted with


def deployed_method(params, experts: Sequence[str], chosen: dict[str, dict[str, Any]] | None = None):
    """The configured method ``params.deploy_method`` names (a :class:`~aestimo.personalization.runs.ConfiguredMethod`),
    with the settings ``chosen`` on validation people (``{registry method: {option: value}}``), as the pipeline builds it."""
    for m in params.configured_methods(list(experts), chosen):
        if m.name == params.deploy_method:
            return m
    raise ValueError(f"parameter 'personalize.deploy_method': no configured method '{params.deploy_method}'")


def personalize_new_person(
    ratings: Ratings,
    name: str,
    theta0: TensorBundle,
    task_vectors: TensorBundle,
    params,
    chosen: dict[str, dict[str, Any]] | None = None,
    seed: int = SEED,
) -> NewPerson:
    """Fit ``name`` on every usable rating of ``ratings`` with the deployed method of ``params``
    (a :class:`aestimo.config.PersonalizeParams`) and the settings ``chosen`` on validation people
    (:func:`aestimo.personalization.selection.chosen_settings` of the run's ``chosen_settings``;
    None: the configured values).

    Raises :class:`RatingsError` when fewer than :data:`MIN_RATINGS` (or the method's
    ``min_support``) ratings have a readable image, or when those all carry the same score; its
    message then lists the unreadable images too.
    """
    check_name(name)
    experts = list(task_vectors.meta["sources"])
    configured = deployed_method(params, experts, chosen)
    method = configured.method
    fields = type(method).Options.model_fields
    applied = {k: v for k, v in (chosen or {}).get(getattr(type(method), "registry_name", ""), {}).items()
               if k in fields and getattr(method.options, k) == v}
    cache_size = int(theta0.meta.get("cache_size", theta0.meta["input_size"]))
    images = load_rated_images(ratings, cache_size)
    used = images.used
    needed = max(MIN_RATINGS, int(getattr(method, "min_support", 0) or 0))
    unreadable = "".join(f"\n  {p}" for p in images.problems)
    if len(used) < needed:
        raise RatingsError(
            f"{ratings.file}: {len(used)} usable ratings ({len(ratings)} rows, {len(images.problems)} images unreadable); "
            f"personalizing with '{configured.name}' needs at least {needed}{unreadable}"
        )
    y_own = ratings.scores[used]
    if np.all(y_own == y_own[0]):
        raise RatingsError(
            f"{ratings.file}: all {len(used)} usable ratings are the same score ({y_own[0]:g}): they say nothing "
            f"about which images you prefer{unreadable}"
        )
    scale = user_scale(*ratings.scale)
    device = params.torch_device
    cached = CachedImages(images.pixels, int(theta0.meta["input_size"]), *normalisation(theta0), device if device.type != "cpu" else None)
    n = len(used)
    rows = torch.arange(n)
    features = embed(load_scorer(theta0).to(device), images.pixels, cached.crop, (cached.mean, cached.std))
    ctx = Context(cached, theta0, task_vectors, experts, features, device=device)
    support = Support(
        USER_SOURCE, name, n, 0, seed, rows,
        torch.as_tensor(scale.to_template(y_own), dtype=torch.float32),
        expert_scores(theta0, task_vectors, images.pixels, ctx.template(USER_SOURCE).cpu()),
    )
    log.info("personalizing %s:%s with '%s' on %d ratings (scale %s, %s)", USER_SOURCE, name, configured.name, n,
             format_scale(ratings.scale), ratings.scale_origin)
    method.prepare([support], [], ctx)  # what a method computes once before fitting (no query: nothing is scored here)
    state = method.fit(support, ctx)
    tensors = {state_key(configured.name, n, 0, t): v.detach().cpu() for t, v in state.items()}
    meta = {
        "sources": task_vectors.meta["sources"],
        "names": task_vectors.meta["names"],
        "deploy_method": params.deploy_method,
        "source": USER_SOURCE,
        "rater_id": name,
        "scale": list(ratings.scale),
        "ratings_file": ratings.file,
        "ratings_used": n,
    }
    return NewPerson(person_key(USER_SOURCE, name), TensorBundle(tensors, meta), configured.name, n, images.problems,
                     ratings.scale_origin, applied)
