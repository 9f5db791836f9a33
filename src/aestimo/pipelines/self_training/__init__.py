"""The long tail: ELTA's self-training round for every expert, and person-level self-training."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
