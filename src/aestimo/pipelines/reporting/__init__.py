"""One HTML report over every stage's tables and plots."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
