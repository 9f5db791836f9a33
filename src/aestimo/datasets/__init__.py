"""Custom Kedro datasets (only what kedro-datasets lacks)."""

from .safetensors_dataset import SafetensorsDataset

__all__ = ["SafetensorsDataset"]
