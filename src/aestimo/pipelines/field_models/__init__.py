"""The field's generic models (PA-IAA's heads, the prompt model, multi-attribute heads), trained once on training raters."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
