"""One expert scorer per rating source: θ0, cached images and features, two-stage fine-tuning."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
