"""Nodes of the ``field_models`` pipeline: each trains (or measures) one generic model a method starts
from, on training raters only (:func:`aestimo.personalization.methods.field.field_data.field_data`),
with what the method declares (:class:`aestimo.personalization.GenericModel`)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import polars as pl
import torch

from aestimo import config
from aestimo.bundle import TensorBundle
from aestimo.personalization import generic_models
from aestimo.personalization.methods.field.field_data import FieldData, field_data

log = logging.getLogger(__name__)


def _data(backbone_features: TensorBundle, ratings, generic_scores, generic_splits, user_profiles, test_people,
          params: dict[str, Any]) -> tuple[config.FieldModelsParams, FieldData]:
    p = config.parse("field_models", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    data = field_data(backbone_features.meta["image_ids"], backbone_features["features"], ratings, generic_scores, generic_splits,
                      user_profiles, test_people, p.seed)
    return p, data


def train_field_model(method: str, backbone_features: TensorBundle, ratings: pl.DataFrame, generic_scores: pl.DataFrame,
                      generic_splits: pl.DataFrame, user_profiles: pl.DataFrame, test_people: pl.DataFrame,
                      params: dict[str, Any]) -> TensorBundle:
    """``method``'s generic model, trained with its block of ``field_models`` options."""
    p, data = _data(backbone_features, ratings, generic_scores, generic_splits, user_profiles, test_people, params)
    t0 = time.perf_counter()
    out = generic_models()[method].train(data, p.options_of(method), p.torch_device)
    log.info("%s's generic model trained in %.1f s", method, time.perf_counter() - t0)
    return out


def evaluate_field_model(method: str, model: TensorBundle, backbone_features: TensorBundle, ratings: pl.DataFrame,
                         generic_scores: pl.DataFrame, generic_splits: pl.DataFrame, user_profiles: pl.DataFrame,
                         test_people: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """``method``'s measure of its generic model on the test splits (e.g. each attribute head's SROCC)."""
    _, data = _data(backbone_features, ratings, generic_scores, generic_splits, user_profiles, test_people, params)
    return generic_models()[method].evaluate(model, data)
