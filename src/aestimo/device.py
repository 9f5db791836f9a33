"""The one device setting and the one precision setting, resolved once and honoured everywhere.

``device`` is ``auto`` (the best present: CUDA, else Apple's MPS, else the CPU),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``; ``precision`` is ``fp32`` (the default,
and the only choice that keeps the CPU's documented numbers), ``bf16`` or ``fp16``.
Library code never names a device: it takes the one a model sits on
(:func:`of`) and moves each batch there (:func:`to`); numpy round trips happen
only at the edges (metrics, tables).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(spec: str | torch.device | None = "auto") -> torch.device:
    """The device ``spec`` names, checked to exist here; ``auto``/None = the best present."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r}: no CUDA device is visible here; use device 'auto' or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {spec!r}: MPS is not available here; use device 'auto' or 'cpu'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    return dev


def of(module: torch.nn.Module) -> torch.device:
    """The device a module's parameters sit on (the CPU for a module without any)."""
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device`` (asynchronous from pinned memory on an accelerator); unchanged on its own device."""
    return x if x.device == device else x.to(device, non_blocking=device.type == "cuda")


def autocast(device: torch.device, precision: Precision = "fp32"):
    """Mixed precision for ``device`` when ``precision`` asks for it; a no-op context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: Precision = "fp32") -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training on an accelerator (None otherwise: bf16 and fp32 need none)."""
    if precision == "fp16" and device.type != "cpu":
        return torch.amp.GradScaler(device.type)
    return None


def describe(device: torch.device) -> str:
    """The device in words, for the run's log (the card's name on CUDA)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
