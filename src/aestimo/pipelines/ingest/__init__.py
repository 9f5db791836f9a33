"""Raw rating files -> canonical tables, splits and the ingest report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
