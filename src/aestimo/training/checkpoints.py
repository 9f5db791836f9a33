"""Training checkpoints as safetensors: model, best state, optimizer and RNG state, so that a
killed run resumes exactly where it stopped (no pickle: the optimizer state is stored as tensors,
its param groups as JSON metadata)."""

from __future__ import annotations

from pathlib import Path

import torch

from aestimo.bundle import TensorBundle, save_bundle

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


