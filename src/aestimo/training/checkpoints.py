"""Training checkpoints as safetensors: model, best state, optimizer and RNG state, so that a
killed run resumes exactly where it stopped (no pickle: the optimizer state is stored as tensors,
its param groups as JSON metadata). A finished stage leaves a slim checkpoint (best state and
history) that a rerun with the same inputs and configuration reuses instead of training again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from aestimo.bundle import TensorBundle, save_bundle


def digest(*parts) -> str:
    """A sha256 of tensors (their bytes, shapes and dtypes), lazy rows of a store (read block by
    block), mappings of tensors and JSON-able values: the same inputs give the same digest, any
    changed value another one."""
    h = hashlib.sha256()

    def feed(x) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif hasattr(x, "blocks"):  # lazy rows of a store (aestimo.data.images.Rows): streamed, same digest as a copy
            h.update(f"{x.dtype}{tuple(x.shape)}".encode())
            for block in x.blocks():
                h.update(block.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, np.ndarray):
            feed(torch.from_numpy(np.ascontiguousarray(x)))
        elif isinstance(x, Mapping):
            for k in sorted(x):
                h.update(str(k).encode())
                feed(x[k])
        else:
            h.update(json.dumps(x, default=repr).encode())

    for part in parts:
        feed(part)
    return h.hexdigest()


def save_finished(path: Path, best_state: dict[str, torch.Tensor], meta: dict) -> None:
    """Replace a stage's checkpoint with its result (best state, history): what a rerun reuses."""
    save_bundle(TensorBundle(_flatten_state("best", best_state), dict(meta, finished=True)), path)


def load_finished(b: TensorBundle) -> dict[str, torch.Tensor]:
    return _unflatten("best", b.tensors)


def _flatten_state(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in state.items()}


def _unflatten(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "/"
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def save_checkpoint(path: Path, model, optimizer, best_state, step, gen, meta) -> None:
    tensors = _flatten_state("model", model.state_dict())
    tensors.update(_flatten_state("best", best_state))
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for name, value in st.items():
            tensors[f"opt/{idx}/{name}"] = torch.as_tensor(value)
    tensors["rng/generator"] = gen.get_state()
    tensors["rng/torch"] = torch.get_rng_state()
    meta = dict(meta, step=step, param_groups=opt["param_groups"])
    save_bundle(TensorBundle(tensors, meta), path)


def load_checkpoint(b: TensorBundle, model, optimizer, gen) -> tuple[dict, int, dict]:
    """Restore model, optimizer and RNG state from a checkpoint bundle."""
    model.load_state_dict(_unflatten("model", b.tensors))
    state: dict[int, dict] = {}
    for k, v in b.tensors.items():
        if k.startswith("opt/"):
            _, idx, name = k.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": b.meta["param_groups"]})
    gen.set_state(b.tensors["rng/generator"])
    torch.set_rng_state(b.tensors["rng/torch"])
    return _unflatten("best", b.tensors), int(b.meta["step"]), b.meta


