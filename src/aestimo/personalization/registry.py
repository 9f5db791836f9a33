"""Personalization methods behind one registry and one interface.

A method is a class registered under a name. It is built from its options (a
pydantic model it declares), **fits** on one person's support set and returns
that person's state (named tensors, saved as safetensors), and **predicts**
scores for query images from that state. The pipeline loops over the methods
named in ``parameters_personalize.yml`` and never names one itself::

    @register("my_method")
    class MyMethod(Method):
        class Options(Options):
            strength: float = 1.0

        def fit(self, support, ctx):
            return {"w": ...}

        def predict(self, state, query, ctx):
            return ...  # scores on the template scale, one per query image

Scores are on the source's template scale (the scale the scorer predicts on);
the metrics are rank and linear correlations, so any increasing affine map of
it scores the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from aestimo.bundle import TensorBundle
from aestimo.data.images import CachedImages
from aestimo.data.scales import SCALES
from aestimo.models.merged import MergedScorer
from aestimo.models.scorer import template_tensor
from aestimo.options import Options

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Support:
    """One person's k rated images for one repeat: all a method may learn from."""

    source: str
    rater_id: str
    k: int
    repeat: int
    seed: int  # every random choice of the fit draws from this
    rows: torch.Tensor  # positions of the images in the image cache
    y: torch.Tensor  # the person's scores, on the source's template scale
    expert_scores: np.ndarray  # (n_experts, k): each expert's zero-shot score of the images (template scale)


@dataclass(frozen=True)
class Query:
    """The images a fitted state is scored on (the person's other rated images); their ratings are for ceilings only."""

    source: str
    rows: torch.Tensor
    expert_scores: np.ndarray  # (n_experts, q)
    truth: np.ndarray | None = None  # the world's hidden noise-free utility; read only by ceilings
    ratings: np.ndarray | None = None  # the person's ratings of the query images, template scale; read only by ceilings


@dataclass
class Context:
    """The frozen things methods share, built once per process: the cached images, θ0, the
    task vectors, the experts' names (in the task vectors' order) and θ0's pooled backbone
    features of the cached images (rows as the cache; None where no method needs them)."""

    images: CachedImages
    theta0: TensorBundle
    task_vectors: TensorBundle
    experts: list[str] = field(default_factory=list)
    features: torch.Tensor | None = None
    #: what methods computed once for everyone in :meth:`Method.prepare` (e.g. per-image features), by key
    shared: dict[str, Any] = field(default_factory=dict)
    #: processes :meth:`Method.prepare` may share its work out to (1 inside a worker)
    workers: int = 1
    #: generic models some methods start from, trained before personalization (e.g. "pa_iaa"), by name
    artifacts: dict[str, TensorBundle] = field(default_factory=dict)
    #: what people told about themselves (Big-Five, experience), by (source, rater_id); empty where unknown
    profiles: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: shares work out over the processes the machinery opened for this context (``mapper(fn, args)``,
    #: set by aestimo.personalization.running while they are open); methods call :meth:`map`
    mapper: Callable[[Callable, Sequence], list] | None = field(default=None, repr=False, compare=False)
    #: where the network passes run (the images' evaluation views and the merged scorer live there);
    #: small solves stay on the CPU, and fitted states come back to it
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: the precision query images are scored in (fp32; bf16 / fp16 under autocast); fitting stays fp32
    precision: str = "fp32"

    @cached_property
    def merged(self) -> MergedScorer:
        """θ0 with the task vectors attached (built on first use: methods that mix outputs never pay for it)."""
        return MergedScorer.from_bundles(self.theta0, self.task_vectors, self.device, self.precision)

    def map(self, fn: Callable[[Context, Any], Any], args: Sequence) -> list:
        """``[fn(self, a) for a in args]``, shared out over the worker processes the machinery opened
        for this context, if any (``fn`` a module-level function); here otherwise."""
        if self.mapper is None or len(args) <= 1:
            return [fn(self, a) for a in args]
        return self.mapper(fn, args)

    def template(self, source: str) -> torch.Tensor:
        """The source's score template, on the context's device."""
        return template_tensor(SCALES[source].template).to(self.device)


@dataclass(frozen=True)
class GenericModel:
    """A model a method starts from, trained before personalization on training raters only (the
    ``field_models`` stage): ``train(data, options, device) -> TensorBundle`` with ``options`` (the
    class of the ``field_models.<method>`` parameter block), saved as the catalog entry
    ``<method>_model``; with ``evaluate(bundle, data) -> table``, also ``<method>_metrics``. The
    method reads the trained bundle as ``ctx.artifacts[<method>]``."""

    options: type[Options]
    train: Callable[..., TensorBundle]
    evaluate: Callable[..., Any] | None = None


class Method:
    """The interface every personalization method implements."""

    class Options(Options):
        """A method with no options."""

    #: True for rows that read hidden or query information (ceilings, never deployable).
    ceiling: ClassVar[bool] = False
    #: True for rows that need the world's hidden truth (``query.truth``): none where it is missing (real data).
    needs_truth: ClassVar[bool] = False
    #: True for methods that run the network per person (worth a worker process); light ones run in the main one.
    heavy: ClassVar[bool] = False
    #: True for methods that read the person's profile (``ctx.profiles``): none for people without one.
    needs_profile: ClassVar[bool] = False
    #: True when the state holds a ``lambda`` that `aestimo score` can merge into a scorer.
    deployable: ClassVar[bool] = False
    #: The generic model the method starts from, trained before personalization (None: none).
    generic_model: ClassVar[GenericModel | None] = None
    #: True for the baseline every method is paired with by default (``personalize.reference_method``).
    reference: ClassVar[bool] = False
    #: True when the rows :meth:`variants` expands an entry into are details (one per expert, say):
    #: measured and tabled, but left out of the report's main views.
    detail_variants: ClassVar[bool] = False
    #: A title when the rows of this method's entries together make an ablation the report shows
    #: as a table of its own (e.g. the prompt's contents).
    ablation: ClassVar[str | None] = None
    #: Set by :func:`register`: the method's name.
    registry_name: ClassVar[str]

    def __init__(self, options: Options | None = None):
        self.options = options if options is not None else self.Options()

    def prepare(self, supports: Sequence[Support], queries: Sequence[Query], ctx: Context) -> None:
        """Compute, once and before any fit, what every person shares (stored in ``ctx.shared``).

        Runs in the main process with all its threads; worker processes receive ``ctx.shared``.
        """

    def fit(self, support: Support, ctx: Context) -> State:
        raise NotImplementedError

    def predict(self, state: State, query: Query, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def fit_many(self, supports: Sequence[Support], ctx: Context) -> list[State]:
        """Fit several people at once (a method may batch them); by default one by one."""
        return [self.fit(s, ctx) for s in supports]

    @classmethod
    def variants(cls, name: str, options: Options, experts: Sequence[str]) -> dict[str, Options]:
        """The summary rows one configured entry gives: by default one, under its own name."""
        return {name: options}


REGISTRY: dict[str, type[Method]] = {}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Register a :class:`Method` subclass under ``name`` (the ``method:`` value in parameters)."""

    def deco(cls: type[Method]) -> type[Method]:
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"personalization method {name!r} is already registered")
        REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return deco


#: How what methods put in ``Context.shared`` under a key prefix is saved for later stages (a
#: personalization run's per-image features, reused by the self-training stage): the prefix's
#: ``(to_tensors(value) -> {part: tensor}, from_tensors({part: tensor}) -> value)``, registered
#: with :func:`shareable` by the module that computes it.
SHAREABLE: dict[str, tuple[Callable[[Any], dict[str, torch.Tensor]], Callable[[dict[str, torch.Tensor]], Any]]] = {}


def shareable(prefix: str, to_tensors: Callable[[Any], dict[str, torch.Tensor]], from_tensors: Callable[[dict[str, torch.Tensor]], Any]) -> None:
    """Let ``ctx.shared`` entries whose key starts with ``prefix`` be saved (:func:`export_shared`)."""
    SHAREABLE[prefix] = (to_tensors, from_tensors)


def _codec(key: str):
    return next((c for p, c in SHAREABLE.items() if key.startswith(p)), None)


def export_shared(ctx: Context) -> TensorBundle:
    """Every saveable entry of ``ctx.shared`` as one bundle (a catalog artifact), tagged with a digest
    of the task vectors it was computed from."""
    from aestimo.training.checkpoints import digest

    tensors, keys = {}, []
    for key, value in ctx.shared.items():
        codec = _codec(key)
        if codec is not None:
            keys.append(key)
            tensors |= {f"{key}/{part}": t for part, t in codec[0](value).items()}
    return TensorBundle(tensors, {"keys": keys, "task_vectors": digest(ctx.task_vectors.tensors)})


def import_shared(ctx: Context, bundle: TensorBundle) -> int:
    """Put an exported bundle's entries back into ``ctx.shared`` when they were computed from this
    context's task vectors (otherwise nothing: they would be another model's); returns how many came back."""
    from aestimo.training.checkpoints import digest

    if bundle.meta.get("task_vectors") != digest(ctx.task_vectors.tensors):
        return 0
    n = 0
    for key in bundle.meta.get("keys", []):
        codec = _codec(key)
        if codec is None:
            continue
        parts = {name[len(key) + 1:]: bundle[name] for name in bundle.tensors if name.startswith(f"{key}/")}
        ctx.shared[key] = codec[1](parts)
        n += 1
    return n


def generic_models() -> dict[str, GenericModel]:
    """Every registered method's generic model, by the method's name (in registration order)."""
    return {name: cls.generic_model for name, cls in REGISTRY.items() if cls.generic_model is not None}


def method_class(name: str) -> type[Method]:
    if name not in REGISTRY:
        raise KeyError(f"unknown personalization method {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]
