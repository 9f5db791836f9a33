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
with the metadata of :func:`aestimo.personalization.running.runs.collect` (``sources``, ``names``,
``deploy_method``, ``source``, ``rater_id``) plus ``scale`` (the person's ``[lo, hi]``, which
`aestimo score` maps its scores back onto). The person is ``own:<name>``
(:data:`aestimo.data.scales.USER_SOURCE`), so ``aestimo score --user <name>`` finds them.

A ratings file is a CSV of two columns, image path and score, read by :mod:`aestimo.data.own_ratings`. No Kedro here: `aestimo personalize` (:mod:`aestimo.console`) and the
``personalize_new_people`` node are thin calls to these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aestimo.bundle import TensorBundle
from aestimo.data.images import CachedImages
from aestimo.data.own_ratings import Ratings, RatingsError, check_name, format_scale, load_rated_images
from aestimo.data.scales import USER_SOURCE, user_scale
from aestimo.models.merged import merge_state
from aestimo.models.inference import embed, predict
from aestimo.models.theta0 import load_scorer, normalisation
from aestimo.personalization.running.keys import person_key, state_key
from aestimo.personalization.registry import Context, Support

log = logging.getLogger(__name__)

#: Fewer usable ratings than this are refused (a method may ask for more: ``min_support``).
MIN_RATINGS = 10
#: The seed every random choice of the fit draws from (the same file gives the same state).
SEED = 0

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
    """The configured method ``params.deploy_method`` names (a :class:`~aestimo.personalization.running.runs.ConfiguredMethod`),
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
    (:func:`aestimo.personalization.running.selection.chosen_settings` of the run's ``chosen_settings``;
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
