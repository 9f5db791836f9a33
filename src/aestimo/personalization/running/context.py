"""The context a stage's methods share, built from the catalog's entries: the image store and
θ0's feature table mapped from disk, θ0, the task vectors and the experts' names."""

from __future__ import annotations

import polars as pl
import torch

from aestimo.bundle import TensorBundle
from aestimo.data.images import CachedImages, pixels_of
from aestimo.models.theta0 import normalisation
from aestimo.personalization.registry import Context
from aestimo.personalization.running.runs import expert_names


def build_context(expert_predictions: pl.DataFrame, image_cache: TensorBundle, backbone_features: TensorBundle, theta0: TensorBundle,
                  task_vectors: TensorBundle, device: torch.device | None = None, precision: str = "fp32") -> Context:
    """The frozen things every method shares; the image store and the feature table stay mapped from disk."""
    device = device if device is not None else torch.device("cpu")
    images = CachedImages(pixels_of(image_cache), theta0.meta["input_size"], *normalisation(theta0), device if device.type != "cpu" else None)
    if backbone_features.meta["image_ids"] != image_cache.meta["image_ids"]:
        raise ValueError("backbone_features and image_cache list different images: rerun the experts pipeline")
    return Context(images, theta0, task_vectors, expert_names(expert_predictions), backbone_features["features"], device=device,
                   precision=precision)
