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


def _data(backbone_features: TensorBundle, ratings, generic_scores, generic_splits, user_profiles, test_people,
          params: dict[str, Any]) -> tuple[config.FieldModelsParams, FieldData]:
    p = config.parse("field_models", params)
    torch.set_num_threads(p.threads or os.cpu_count() or 1)
    data = field_data(backbone_features.meta["image_ids"], backbone_features["features"], ratings, generic_scores, generic_splits,
                      user_profiles, test_people, p.seed)
    return p, data


def train_personality_model(backbone_features: TensorBundle, ratings: pl.DataFrame, generic_scores: pl.DataFrame,
                            generic_splits: pl.DataFrame, user_profiles: pl.DataFrame, test_people: pl.DataFrame,
                            params: dict[str, Any]) -> TensorBundle:
    """PA-IAA's aesthetic-distribution and Big-Five heads on the shared backbone's features."""
    p, data = _data(backbone_features, ratings, generic_scores, generic_splits, user_profiles, test_people, params)
    t0 = time.perf_counter()
    out = train_pa_iaa(data, p.pa_iaa)
    log.info("PA-IAA heads trained in %.1f s", time.perf_counter() - t0)
    return out


def train_prompt_fusion_model(backbone_features: TensorBundle, ratings: pl.DataFrame, generic_scores: pl.DataFrame,
                              generic_splits: pl.DataFrame, user_profiles: pl.DataFrame, test_people: pl.DataFrame,
                              params: dict[str, Any]) -> TensorBundle:
    """AesMamba-P's cross-attention fusion of the image feature with the rater's prompt."""
    p, data = _data(backbone_features, ratings, generic_scores, generic_splits, user_profiles, test_people, params)
    t0 = time.perf_counter()
    out = train_prompt_model(data, p.prompt)
    log.info("prompt model trained in %.1f s", time.perf_counter() - t0)
    return out


def train_attribute_model(backbone_features: TensorBundle, ratings: pl.DataFrame, generic_scores: pl.DataFrame,
                          generic_splits: pl.DataFrame, user_profiles: pl.DataFrame, test_people: pl.DataFrame,
                          params: dict[str, Any]) -> tuple[TensorBundle, pl.DataFrame]:
    """The multi-attribute heads (one per rated attribute) and their SROCC against each attribute's test labels."""
    p, data = _data(backbone_features, ratings, generic_scores, generic_splits, user_profiles, test_people, params)
    t0 = time.perf_counter()
    model = train_multi_attribute(data, p.multi_attribute)
    log.info("multi-attribute heads trained in %.1f s", time.perf_counter() - t0)
    return model, attribute_metrics(model, data)
