"""Models: backbones (timm + one weight loader), score heads, scorers.

No Kedro import here: a notebook can ``from aestimo.models import build_scorer``.
"""

from aestimo.models.backbone import backbone_preprocessing, create_backbone
from aestimo.models.head import ResidualAdapter, ScoreHead
from aestimo.models.scorer import (
    MultiAttributeScorer,
    Scorer,
    build_scorer,
    expected_score,
    freeze_bn_stats,
    template_tensor,
)

__all__ = [
    "MultiAttributeScorer",
    "ResidualAdapter",
    "ScoreHead",
    "Scorer",
    "backbone_preprocessing",
    "build_scorer",
    "create_backbone",
    "expected_score",
    "freeze_bn_stats",
    "template_tensor",
]
