"""The node that personalizes new people from their own ratings files (``new_people_ratings``:
one CSV per person under ``data/01_raw/new_people/``, named ``<name>.csv``) with the deployed
method and the settings chosen on validation people, into ``new_people_coefficients`` (``own__<name>.safetensors``, the format of
``user_coefficients``). Thin: the work is in :mod:`aestimo.personalization.new_person`, the same
code as `aestimo personalize`.

A file with a bad row, too few usable ratings or only one score value stops the run with the
file, row and column (as ingest does with bad rows); a missing or unreadable image is logged and
that rating left out. No files, no people, no error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import polars as pl
import torch

from aestimo import config
from aestimo.bundle import TensorBundle
from aestimo.personalization.running import selection
from aestimo.data.own_ratings import Ratings, check_name
from aestimo.personalization.new_person import personalize_new_person

log = logging.getLogger(__name__)


def personalize_new_people(
    new_people_ratings: dict[str, Callable[[], Ratings]],
    theta0: TensorBundle,
    task_vectors: TensorBundle,
    chosen_settings: pl.DataFrame,
    params: dict[str, Any],
) -> dict[str, TensorBundle]:
    """Each ratings file's person fitted with ``personalize.deploy_method`` and the settings chosen on
    validation people (as ``personalize_people`` fits the test people): ``{own__<name>: state}``."""
    p = config.parse("personalize", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    chosen = selection.chosen_settings(chosen_settings)
    out: dict[str, TensorBundle] = {}
    for name in sorted(new_people_ratings):
        try:
            check_name(name)
        except ValueError as err:
            raise ValueError(f"new_people_ratings: the file '{name}.csv': {err} (the file's name is the person's name)") from None
        person = personalize_new_person(new_people_ratings[name](), name, theta0, task_vectors, p, chosen)
        for problem in person.problems:
            log.warning("left out: %s", problem)
        out[person.key] = person.bundle
    if out:
        log.info("personalized %d new people with '%s': %s", len(out), p.deploy_method, ", ".join(sorted(out)))
    return out
