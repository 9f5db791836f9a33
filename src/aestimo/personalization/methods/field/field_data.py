"""What the field's generic models (PA-IAA's heads, the prompt model, multi-attribute heads) learn
from, and what their personalization reads about a person.

The generic models are trained once, before personalization, on **training raters only**: their
ratings of images in the experts' train / val splits and their profiles. No test person's rating or
profile, and no rating of a held-out person's image (split ``personal``: the images test and
validation people rate), is in :class:`FieldData`; :func:`field_data` builds it and a test guards it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
import torch

TRAITS = ("big5_O", "big5_C", "big5_E", "big5_A", "big5_N")
EXPERIENCE = ("art_experience", "photo_experience")


@dataclass(frozen=True)
class FieldData:
    """Training data of the field's generic models.

    * ``features``: θ0's pooled backbone features ``(N, D)`` of every cached image, rows as ``image_ids``
      (the image cache's order); the generic models are heads on the shared backbone.
    * ``ratings``: individual ratings of training raters on expert-split (train / val) images:
      ``source, image_id, rater_id, score, score_template, split``.
    * ``generic_scores``: image-level labels (``mean_template``, ``dist``, ``attr_*``) of expert-split images,
      with their ``split`` (train / val / test) joined.
    * ``profiles``: the training raters' profiles (``user_profiles`` rows: Big-Five ``big5_*`` on the
      source's scale, ``art_experience``, ``photo_experience``, ...).
    """

    image_ids: list[str]
    features: torch.Tensor
    ratings: pl.DataFrame
    generic_scores: pl.DataFrame
    profiles: pl.DataFrame
    seed: int = 0

    def rows(self, image_ids: list[str]) -> torch.Tensor:
        pos = {iid: i for i, iid in enumerate(self.image_ids)}
        return torch.as_tensor([pos[i] for i in image_ids], dtype=torch.long)


def field_data(
    backbone_features_ids: list[str],
    features: torch.Tensor,
    ratings: pl.DataFrame,
    generic_scores: pl.DataFrame,
    generic_splits: pl.DataFrame,
    user_profiles: pl.DataFrame,
    test_people: pl.DataFrame,
    seed: int = 0,
) -> FieldData:
    """:class:`FieldData` from the catalog's tables, leaving out test people and held-out images."""
    expert_splits = generic_splits.filter(pl.col("split").is_in(["train", "val", "test"])).select("source", "image_id", "split")
    test = test_people.select("source", "rater_id")
    train_ratings = (
        ratings.join(test, on=["source", "rater_id"], how="anti")
        .join(expert_splits.filter(pl.col("split") != "test"), on=["source", "image_id"], how="inner")
    )
    raters = train_ratings.select("source", "rater_id").unique()
    profiles = user_profiles.join(raters, on=["source", "rater_id"], how="semi")
    scores = generic_scores.join(expert_splits, on=["source", "image_id"], how="inner")
    return FieldData(list(backbone_features_ids), features, train_ratings, scores, profiles, seed)


def profiles_by_person(user_profiles: pl.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """Every profile as ``{(source, rater_id): {column: value}}`` (what ``Context.profiles`` holds)."""
    return {(r["source"], r["rater_id"]): r for r in user_profiles.iter_rows(named=True)}
