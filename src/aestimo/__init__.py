"""Aestimo: personalized image aesthetic assessment with layer-wise task vectors."""

__version__ = "0.1.0"
