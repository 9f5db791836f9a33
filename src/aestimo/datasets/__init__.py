"""Custom Kedro datasets (only what kedro-datasets lacks)."""

from .safetensors_dataset import SafetensorsDataset, TensorBundle

__all__ = ["SafetensorsDataset", "TensorBundle"]
