"""Nodes of the ``field_models`` pipeline: each trains one generic model the field's personalization
methods start from, on training raters only (:func:`aestimo.personalization.field_data.field_data`)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import polars as pl
import torch

from aestimo import config
from aestimo.bundle import TensorBundle
from aestimo.personalization.field_data import FieldData, field_data
from aestimo.personalization.multi_attribute import attribute_metrics, train_multi_attribute
from aestimo.personalization.pa_iaa import train_pa_iaa
from aestimo.personalization.prompts import train_prompt_model

log = logging.getLogger(__name__)

#: each generic model: its trainer, by the name of its block in ``field_models`` parameters
TRAINERS = {"pa_iaa": train_pa_iaa, "prompt": train_prompt_model, "multi_attribute": train_multi_attribute}


def _data(backbone_features: TensorBundle, ratings, generic_scores, generic_splits, user_profiles, test_people,
          params: dict[str, Any]) -> tuple[config.FieldModelsParams, FieldData]:
    p = config.parse("field_models", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    data = field_data(backbone_features.meta["image_ids"], backbone_features["features"], ratings, generic_scores, generic_splits,
                      user_profiles, test_people, p.seed)
    return p, data


def train_field_model(kind: str, backbone_features: TensorBundle, ratings: pl.DataFrame, generic_scores: pl.DataFrame,
                      generic_splits: pl.DataFrame, user_profiles: pl.DataFrame, test_people: pl.DataFrame,
                      params: dict[str, Any]) -> TensorBundle:
    """One generic model (``kind``: pa_iaa, prompt or multi_attribute) with its block of options."""
    p, data = _data(backbone_features, ratings, generic_scores, generic_splits, user_profiles, test_people, params)
    t0 = time.perf_counter()
    out = TRAINERS[kind](data, getattr(p, kind), p.torch_device)
    log.info("%s trained in %.1f s", kind, time.perf_counter() - t0)
    return out


def evaluate_attribute_model(multi_attribute_model: TensorBundle, backbone_features: TensorBundle, ratings: pl.DataFrame,
                             generic_scores: pl.DataFrame, generic_splits: pl.DataFrame, user_profiles: pl.DataFrame,
                             test_people: pl.DataFrame, params: dict[str, Any]) -> pl.DataFrame:
    """Each attribute head's SROCC (and PLCC) against its attribute's labels on the test splits."""
    _, data = _data(backbone_features, ratings, generic_scores, generic_splits, user_profiles, test_people, params)
    return attribute_metrics(multi_attribute_model, data)
