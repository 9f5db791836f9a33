"""Tensors plus metadata, stored as safetensors (weights, task vectors, caches, λ).

Never a pickle: safetensors holds raw tensors and a string-to-string header,
where the metadata travels as one JSON string. Saving writes a temporary file
beside the target and renames it into place, so a run killed mid-save never
leaves a half-written file that looks complete. No Kedro here: the catalog's
dataset (:mod:`aestimo.datasets`) is a thin wrapper over these functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file


class BundleError(ValueError):
    """A file that should hold a tensor bundle cannot be read as one."""


@dataclass
class TensorBundle(Mapping[str, torch.Tensor]):
    """Named tensors plus JSON-able metadata (ids, names, config); a read-only mapping of the tensors."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        n = sum(t.numel() for t in self.tensors.values())
        keys = list(self.tensors)
        shown = ", ".join(keys[:4]) + (f", … (+{len(keys) - 4})" if len(keys) > 4 else "")
        return f"TensorBundle({len(keys)} tensors, {n:,} values: {shown}; meta keys {sorted(self.meta)})"


def save_bundle(bundle: TensorBundle | Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Write ``bundle`` to ``path`` atomically (temporary file, then rename)."""
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
    """Read a bundle; a missing file raises FileNotFoundError, an unreadable one :class:`BundleError`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            header = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise BundleError(f"{path} is not a readable safetensors file: {err}") from err
    return TensorBundle(tensors, json.loads(header.get("aestimo", "{}")))
