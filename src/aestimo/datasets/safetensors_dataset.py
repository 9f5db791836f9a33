"""A Kedro dataset for tensors stored as safetensors (weights, task vectors, caches).

Never a pickle: safetensors holds raw tensors and a string-to-string header.
Saving writes a temporary file beside the target and renames it into place, so
a run killed mid-save never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io import AbstractDataset, DatasetError
from safetensors import safe_open
from safetensors.torch import save_file


@dataclass
class TensorBundle:
    """Named tensors plus JSON-able metadata (ids, names, config)."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]


def save_bundle(bundle: TensorBundle | dict[str, torch.Tensor], path: str | Path) -> None:
    if not isinstance(bundle, TensorBundle):
        bundle = TensorBundle(dict(bundle))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in bundle.tensors.items()}
    header = {"aestimo": json.dumps(bundle.meta)}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=header)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_bundle(path: str | Path) -> TensorBundle:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            header = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise DatasetError(f"{path} is not a readable safetensors file: {err}") from err
    return TensorBundle(tensors, json.loads(header.get("aestimo", "{}")))


class SafetensorsDataset(AbstractDataset[TensorBundle, TensorBundle]):
    """``type: aestimo.datasets.SafetensorsDataset`` with a ``filepath``."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> TensorBundle:
        return load_bundle(self._filepath)

    def save(self, data: TensorBundle | dict[str, torch.Tensor]) -> None:
        save_bundle(data, self._filepath)

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
