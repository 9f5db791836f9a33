"""The catalog's dataset for tensor bundles (weights, task vectors, caches, λ): a thin
Kedro wrapper over :mod:`aestimo.bundle`."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError

from aestimo.bundle import BundleError, TensorBundle, load_bundle, save_bundle


class SafetensorsDataset(AbstractDataset[TensorBundle, TensorBundle]):
    """``type: aestimo.datasets.SafetensorsDataset`` with a ``filepath``; ``mmap: true`` maps the
    tensors from the file instead of reading them (per-image tables: rows are read when indexed)."""

    def __init__(self, filepath: str, mmap: bool = False, metadata: dict[str, Any] | None = None):
        self._filepath = PurePosixPath(filepath)
        self._mmap = mmap
        self.metadata = metadata

    def load(self) -> TensorBundle:
        try:
            return load_bundle(self._filepath, mmap=self._mmap)
        except BundleError as err:
            raise DatasetError(str(err)) from err

    def save(self, data: TensorBundle | dict[str, torch.Tensor]) -> None:
        save_bundle(data, self._filepath)

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "mmap": self._mmap}
