"""θ0, the shared starting point of every expert, and the one door that makes a scorer from it.

θ0 is a :class:`~aestimo.bundle.TensorBundle`: the scorer's state dict
(pretrained backbone + a head initialised from ``head_seed``) and, in its
metadata, the backbone's name, its ``timm.create_model`` arguments (``model_kwargs``,
when any), input size and normalisation. Any state with
θ0's architecture (an expert, a merged person) becomes a scorer through
:func:`load_scorer`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from aestimo.bundle import TensorBundle
from aestimo.models.backbone import backbone_preprocessing
from aestimo.models.scorer import Scorer, build_scorer


def _fixed_input_size(backbone: torch.nn.Module) -> tuple[int, int] | None:
    """The one input size a backbone accepts (a ViT's patch embedding without dynamic size), else None."""
    patch = getattr(backbone, "patch_embed", None)
    size = getattr(patch, "img_size", None)
    if size is None or getattr(backbone, "dynamic_img_size", False) or not getattr(patch, "strict_img_size", True):
        return None
    return tuple(int(v) for v in size) if isinstance(size, tuple | list) else (int(size), int(size))


def make_theta0(
    backbone: str, weights: str | None, head_seed: int, allow_random: bool, input_size: int, cache_size: int,
    model_kwargs: Mapping[str, Any] | None = None,
) -> TensorBundle:
    """θ0: the pretrained backbone plus one head initialised from ``head_seed``, shared by every expert.

    ``model_kwargs`` (passed to ``timm.create_model``, e.g. a ViT's ``img_size``) are recorded in the
    metadata when given, so that :func:`load_scorer` rebuilds the same architecture.
    """
    kwargs = dict(model_kwargs or {})
    scorer = build_scorer(backbone, weights, head_seed=head_seed, allow_random=allow_random, model_kwargs=kwargs)
    fixed = _fixed_input_size(scorer.backbone)
    if fixed is not None and fixed != (input_size, input_size):
        raise ValueError(
            f"backbone {backbone!r} takes {fixed[0]}x{fixed[1]} inputs but experts.input_size is {input_size}: "
            f"set experts.model_kwargs.img_size: {input_size} (or input_size: {fixed[0]})"
        )
    mean, std = backbone_preprocessing(backbone)
    meta = {
        "backbone": backbone,
        "weights": str(weights),
        "head_seed": head_seed,
        "input_size": input_size,
        "cache_size": cache_size,
        "mean": list(mean),
        "std": list(std),
    }
    if kwargs:  # only when given: θ0 of a default backbone keeps its metadata as it was
        meta["model_kwargs"] = json.loads(json.dumps(kwargs))
    return TensorBundle({k: v.clone() for k, v in scorer.state_dict().items()}, meta)


def model_kwargs(theta0: TensorBundle) -> dict[str, Any]:
    """The ``timm.create_model`` arguments θ0's backbone was built with (none for older bundles)."""
    return dict(theta0.meta.get("model_kwargs") or {})


def load_scorer(theta0: TensorBundle, state: Mapping[str, torch.Tensor] | None = None) -> Scorer:
    """A scorer with θ0's architecture holding ``state`` (θ0 itself when None), in eval mode. Strict load."""
    scorer = build_scorer(theta0.meta["backbone"], None, head_seed=0, allow_random=True,
                          model_kwargs=model_kwargs(theta0))
    scorer.load_state_dict(state if state is not None else theta0.tensors, strict=True)
    return scorer.eval()


def normalisation(theta0: TensorBundle) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` θ0's backbone expects its inputs normalised with."""
    return tuple(theta0.meta["mean"]), tuple(theta0.meta["std"])
