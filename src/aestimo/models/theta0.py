"""θ0, the shared starting point of every expert, and the one door that makes a scorer from it.

θ0 is a :class:`~aestimo.bundle.TensorBundle`: the scorer's state dict
(pretrained backbone + a head initialised from ``head_seed``) and, in its
metadata, the backbone's name, input size and normalisation. Any state with
θ0's architecture (an expert, a merged person) becomes a scorer through
:func:`load_scorer`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from aestimo.bundle import TensorBundle
from aestimo.models.backbone import backbone_preprocessing
from aestimo.models.scorer import Scorer, build_scorer


def make_theta0(
    backbone: str, weights: str | None, head_seed: int, allow_random: bool, input_size: int, cache_size: int
) -> TensorBundle:
    """θ0: the pretrained backbone plus one head initialised from ``head_seed``, shared by every expert."""
    scorer = build_scorer(backbone, weights, head_seed=head_seed, allow_random=allow_random)
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
    return TensorBundle({k: v.clone() for k, v in scorer.state_dict().items()}, meta)


def load_scorer(theta0: TensorBundle, state: Mapping[str, torch.Tensor] | None = None) -> Scorer:
    """A scorer with θ0's architecture holding ``state`` (θ0 itself when None), in eval mode. Strict load."""
    scorer = build_scorer(theta0.meta["backbone"], None, head_seed=0, allow_random=True)
    scorer.load_state_dict(state if state is not None else theta0.tensors, strict=True)
    return scorer.eval()


def normalisation(theta0: TensorBundle) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` θ0's backbone expects its inputs normalised with."""
    return tuple(theta0.meta["mean"]), tuple(theta0.meta["std"])
