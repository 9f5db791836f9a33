"""Inference rewrites of a CNN with frozen statistics: batch-norm folding and static "same" padding.

**Batch-norm folding**: every convolution followed by a frozen batch norm becomes one convolution with a bias.

With running statistics frozen (every merged model and every evaluation here),
``BN(conv(x; W))`` is ``conv(x; W·s) + (β − μ·s)`` with ``s = γ / √(σ² + ε)``.
Folding removes a pass over every activation map (about a quarter of the
CPU time of an EfficientNet-Lite forward). It is a function of the weights,
so it runs after a merge, inside ``torch.func`` transforms and under autograd
alike: the merged scorer folds ``θ0 + Σ λ τ`` for scoring and for exact λ
learning (instant's per-image features run unfolded: they are derivatives with
respect to the task vectors' own parameters, :mod:`aestimo.models.layer_derivatives`).

Pairs are found in module registration order (a ``Conv2d`` directly followed
by a ``BatchNorm2d`` of as many channels), which is the data flow in timm's
CNNs.

**Static "same" padding**: TF-style convolutions (timm's ``Conv2dSame``) pad
their input on every call, often one more pixel right and below than left and
above; that copy of every activation map cost a fifth of the forward. For a
known input size the padding is fixed, and an asymmetric one equals a
symmetric padding of a kernel one larger whose first row and column are zero:
reading ``x[s·i + j − left]`` with weight ``w[j]`` is reading
``x[s·i + j' − (left + 1)]`` with ``w'[j'] = w[j' − 1]``, ``w'[0] = 0``. The
rewritten convolution refuses any other input size.

:meth:`BatchNormFolding.of` checks the rewritten module against the plain one
on a probe input and declines (returns ``None``) when they differ, so a model
whose order misleads the search is simply scored as it is.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame
from torch import nn
from torch.func import functional_call

log = logging.getLogger(__name__)

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str, float]]:
    """``(conv name, batch-norm name, eps)`` for every conv directly followed by a batch norm."""
    pairs, last_conv = [], None
    for name, mod in module.named_modules():
        if isinstance(mod, nn.Conv2d):
            last_conv = (name, mod)
        elif isinstance(mod, nn.BatchNorm2d):
            if last_conv is not None and last_conv[1].out_channels == mod.num_features and mod.affine and mod.track_running_stats:
                pairs.append((last_conv[0], name, mod.eps))
            last_conv = None
        elif len(list(mod.children())) == 0 and not isinstance(mod, nn.Identity | nn.ReLU | nn.ReLU6 | nn.Dropout):
            last_conv = None  # another layer in between: not a pair
    return pairs


def module_device(module: nn.Module) -> torch.device:
    """Where the module's weights live (probes are made there; the CPU for a module without any)."""
    return next(iter(module.parameters()), next(iter(module.buffers()), torch.empty(0))).device


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TF "same" padding (before, after) of one spatial side, as timm's ``pad_same`` computes it."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class StaticSameConv2d(nn.Conv2d):
    """A convolution with the fixed symmetric padding that replaces a "same" one at one input size."""

    def __init__(self, conv: nn.Conv2d, kernel: int, padding: int, size: tuple[int, int]):
        super().__init__(conv.in_channels, conv.out_channels, kernel, conv.stride, padding, 1, conv.groups,
                         conv.bias is not None)
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"this folded model was built for {self.size} inputs at this layer, got {tuple(x.shape[-2:])}")
        return super().forward(x)


def _input_sizes(module: nn.Module, names: list[str], input_shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """The spatial input size of each named submodule on a ``input_shape`` forward."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [module.get_submodule(n).register_forward_pre_hook(lambda _m, args, n=n: sizes.__setitem__(n, tuple(args[0].shape[-2:])))
             for n in names]
    try:
        with torch.no_grad():
            module(torch.zeros(input_shape, device=module_device(module)))
    finally:
        for h in hooks:
            h.remove()
    return sizes


@dataclass
class BatchNormFolding:
    """A copy of a module with its conv + batch-norm pairs folded, and the map from its weights."""

    module: nn.Module  # the folded copy (eval mode): batch norms replaced by what follows them (act, drop)
    pairs: list[tuple[str, str, float]]
    widened: tuple[str, ...] = ()  # "same" convolutions whose kernel gained a leading zero row and column

    @classmethod
    def of(cls, module: nn.Module, input_shape: tuple[int, ...] | None = None) -> BatchNormFolding | None:
        """The folding of ``module`` (weights and buffers as they are now), or None when it has no
        pair or when the folded copy does not reproduce the module on a ``input_shape`` probe."""
        pairs = _conv_bn_pairs(module)
        if not pairs:
            return None
        folded = copy.deepcopy(module).eval()
        for conv_name, bn_name, _ in pairs:
            bn = folded.get_submodule(bn_name)
            tail = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
            _replace(folded, bn_name, nn.Sequential(*tail) if tail else nn.Identity())
            conv = folded.get_submodule(conv_name)
            if conv.bias is None:
                conv.bias = nn.Parameter(conv.weight.new_zeros(conv.out_channels))
        widened = _static_same_padding(folded, input_shape) if input_shape is not None else ()
        for p in folded.parameters():
            p.requires_grad_(False)
        out = cls(folded, pairs, widened)
        if input_shape is not None and not out.reproduces(module, input_shape):
            log.warning("batch-norm folding does not reproduce %s: scoring it unfolded", type(module).__name__)
            return None
        return out

    def fold(self, weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The folded module's weights from the plain module's (parameters and buffers); differentiable."""
        out = dict(weights)
        for conv_name, bn_name, eps in self.pairs:
            scale = weights[f"{bn_name}.weight"] * torch.rsqrt(weights[f"{bn_name}.running_var"] + eps)
            w = weights[f"{conv_name}.weight"]
            out[f"{conv_name}.weight"] = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
            shift = weights[f"{bn_name}.bias"] - weights[f"{bn_name}.running_mean"] * scale
            bias = weights.get(f"{conv_name}.bias")
            out[f"{conv_name}.bias"] = shift if bias is None else shift + bias * scale
            for key in _BN_KEYS:
                out.pop(f"{bn_name}.{key}", None)
        for name in self.widened:
            out[f"{name}.weight"] = F.pad(out[f"{name}.weight"], (1, 0, 1, 0))
        return out

    def reproduces(self, module: nn.Module, input_shape: tuple[int, ...], atol: float = 1e-4) -> bool:
        """Whether the folded copy gives ``module``'s outputs on a fixed random probe."""
        x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0)).to(module_device(module))
        weights = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                want = module(x)
                got = functional_call(self.module, self.fold(weights), (x,))
        finally:
            module.train(was_training)
        return bool(torch.allclose(got, want, atol=atol, rtol=1e-4))


def _static_same_padding(folded: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, ...]:
    """Replace every square, undilated ``Conv2dSame`` of ``folded`` by a :class:`StaticSameConv2d` for
    the sizes a ``input_shape`` input gives it; the names whose kernel grew by one."""
    names = [n for n, m in folded.named_modules()
             if isinstance(m, Conv2dSame) and m.dilation == (1, 1) and m.kernel_size[0] == m.kernel_size[1] and m.stride[0] == m.stride[1]]
    widened = []
    for name, size in _input_sizes(folded, names, input_shape).items():
        conv = folded.get_submodule(name)
        k, s = conv.kernel_size[0], conv.stride[0]
        (top, bottom), (left, right) = _same_pads(size[0], k, s), _same_pads(size[1], k, s)
        if (top, bottom) != (left, right) or bottom - top not in (0, 1):
            continue
        # its own weights are never used: the folded module always runs on fold()'s weights
        _replace(folded, name, StaticSameConv2d(conv, k + bottom - top, bottom, size))
        if bottom > top:
            widened.append(name)
    return tuple(widened)


def folded_copy(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """An eval-mode copy of ``module`` with its batch norms folded into the convolutions (or the
    module itself, in eval mode, when there is nothing to fold or folding would change it)."""
    folding = BatchNormFolding.of(module, input_shape)
    if folding is None:
        return module.eval()
    weights = folding.fold({**dict(module.named_parameters()), **dict(module.named_buffers())})
    folding.module.load_state_dict({k: v.detach() for k, v in weights.items()}, strict=True)
    return folding.module
