"""Few-shot personalization by layer-wise task-vector coefficients, with its baselines."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
