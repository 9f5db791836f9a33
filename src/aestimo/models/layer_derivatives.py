"""Per-image directional derivatives of a network's output, one per parameter tensor and direction.

For images ``x_b``, parameter tensors ``θ_l`` and directions ``d[i, l]`` (one
stack of ``n`` directions per tensor), :func:`directional_derivatives` returns

    D[b, i, l] = ⟨∂f(x_b)/∂θ_l, d[i, l]⟩

for a scalar output ``f``. With the task vectors as directions these are the
linearized merged scorer's features ∂s/∂λ (:mod:`aestimo.personalization.linearized`).

``torch.func`` gets them as per-image gradients (``vmap`` of ``grad``), which
builds a weight gradient for every image through batched grouped convolutions:
slow on a CPU. Here one ordinary forward pass records each layer's input
``a`` and one backward pass gives the gradient ``δ`` at each layer's output;
since a layer's output depends on its own parameters only through the layer,

    ⟨∂f/∂θ_l, d⟩ = ⟨δ, ∂layer(a; θ)/∂θ_l · d⟩,

computed per layer type in the cheapest order:

* convolutions: the image's weight gradient ``Σ_pos δ ⊗ patch`` (a batched
  matrix product for 1×1 convolutions, ``k²`` shifted products for depthwise
  ones, unfolded patches otherwise), dotted with the directions; a 1×1
  convolution over few positions instead maps its input through all the
  directions in one matrix product;
* linear layers: the input through all the directions, dotted with ``δ``;
* frozen batch norms (timm's ``BatchNormAct2d`` too): per-channel sums of
  ``δ`` (before the activation) and of ``δ · x̂``;
* any other layer: ``torch.func`` per image on that layer alone.

2.3–2.8× faster than per-image gradients of the whole network on one CPU
thread for EfficientNet-Lite0 at 64 px (``bench/instant_features.py``), equal
to them up to float32 rounding (tests/models/test_layer_derivatives.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame
from timm.layers.padding import pad_same
from torch import nn
from torch.func import functional_call, vjp, vmap

#: a 1×1 convolution over at most this many positions maps its input through the directions instead
#: (the 2×2 maps of a 64 px input; on the 4×4 ones per-image weight gradients were ~14 % faster overall)
FEW_POSITIONS = 4


def _conv_weight(mod: nn.Conv2d, a: torch.Tensor, d: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    pad = tuple(mod.padding)
    if isinstance(mod, Conv2dSame):  # timm pads "same" on every call: pad as it does
        a, pad = pad_same(a, mod.kernel_size, mod.stride, mod.dilation), (0, 0)
    B, g, n = a.shape[0], mod.groups, len(dirs)
    if mod.kernel_size == (1, 1) and mod.stride == (1, 1) and pad == (0, 0) and g == 1:
        ap = a.permute(0, 2, 3, 1).reshape(B, -1, a.shape[1])  # (B, positions, C): free in channels_last
        dp = d.permute(0, 2, 3, 1).reshape(B, -1, d.shape[1])
        if ap.shape[1] <= FEW_POSITIONS:
            cout, cin = dirs.shape[1], dirs.shape[2]
            mapped = (ap.reshape(-1, cin) @ dirs.reshape(n * cout, cin).T).reshape(B, -1, n, cout)
            return torch.einsum("bpno,bpo->bn", mapped, dp)
        grad = torch.bmm(dp.transpose(1, 2), ap)  # (B, Cout, Cin)
    elif g == mod.in_channels == mod.out_channels:  # depthwise
        a = F.pad(a, (pad[1], pad[1], pad[0], pad[0]))
        (ho, wo), (sh, sw), (dh, dw) = d.shape[-2:], mod.stride, mod.dilation
        kh, kw = mod.kernel_size
        grad = a.new_empty(B, g, kh, kw)
        for u in range(kh):
            for v in range(kw):
                window = a[:, :, u * dh : u * dh + sh * (ho - 1) + 1 : sh, v * dw : v * dw + sw * (wo - 1) + 1 : sw]
                grad[:, :, u, v] = (window * d).sum((2, 3))
    else:
        cols = F.unfold(a, mod.kernel_size, mod.dilation, pad, mod.stride)  # (B, Cin·k², positions)
        p = cols.shape[-1]
        grad = torch.einsum("bgip,bgop->bgoi", cols.reshape(B, g, -1, p), d.reshape(B, g, -1, p))
    return grad.reshape(B, -1) @ dirs.reshape(n, -1).T


def _linear_weight(a: torch.Tensor, d: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    n, out, inp = dirs.shape
    a, d = a.reshape(a.shape[0], -1, inp), d.reshape(d.shape[0], -1, out)
    mapped = (a @ dirs.reshape(n * out, inp).T).reshape(a.shape[0], a.shape[1], n, out)
    return torch.einsum("bpno,bpo->bn", mapped, d)


def _bias(d: torch.Tensor, dirs: torch.Tensor, channel_dim: int) -> torch.Tensor:
    per_channel = d.movedim(channel_dim, -1).reshape(d.shape[0], -1, d.shape[channel_dim]).sum(1)
    return per_channel @ dirs.T


def _frozen_batch_norm(mod: nn.BatchNorm2d, a: torch.Tensor, d: torch.Tensor, w: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-image gradients of a frozen batch norm's weight and bias; timm's ``BatchNormAct2d``
    applies its activation after the affine part, so ``δ`` is taken back through it first."""
    xhat = (a - w["running_mean"][:, None, None]) * torch.rsqrt(w["running_var"] + mod.eps)[:, None, None]
    if type(mod) is nn.BatchNorm2d:
        d_pre = d
    else:
        pre = (xhat * w["weight"][:, None, None] + w["bias"][:, None, None]).detach().requires_grad_(True)
        with torch.enable_grad():
            post = mod.act(mod.drop(pre * 1.0))  # * 1.0: an in-place activation may not touch a leaf
            (d_pre,) = torch.autograd.grad(post, pre, d)
    return {"weight": (d_pre * xhat).sum((2, 3)), "bias": d_pre.sum((2, 3))}


def _any_layer(mod: nn.Module, a: torch.Tensor, d: torch.Tensor, own: Sequence[str],
               w: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-image gradients of ``own`` parameters of any layer, by ``torch.func`` on the layer alone."""
    own_w = {p: w[p] for p in own}

    def one(ab: torch.Tensor, db: torch.Tensor) -> dict[str, torch.Tensor]:
        _, pull = vjp(lambda p: functional_call(mod, {**w, **p}, (ab[None],))[0], own_w)
        return pull(db)[0]

    return vmap(one)(a, d)


def _is_frozen_bn(mod: nn.Module) -> bool:
    return (isinstance(mod, nn.BatchNorm2d) and not mod.training and mod.affine and mod.track_running_stats
            and (type(mod) is nn.BatchNorm2d or (hasattr(mod, "act") and hasattr(mod, "drop"))))


def directional_derivatives(
    module: nn.Module,
    weights: Mapping[str, torch.Tensor],
    names: Sequence[str],
    directions: Sequence[torch.Tensor],
    x: torch.Tensor,
    output: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(x)`` ``(B,)`` and ``D`` ``(B, n, L)`` with ``D[b, i, l] = ⟨∂f(x_b)/∂θ_l, directions[l][i]⟩``.

    ``module`` runs on ``weights`` (every parameter and buffer, by name) through
    ``functional_call``; ``f = output(module(x))`` is one number per image.
    ``names[l]`` is the parameter tensor of ``directions[l]`` ``(n, *shape)``.
    Layers must not share an input or output with an in-place operation, and
    images must not interact (eval mode); a layer that breaks the first is refused.
    """
    n, L = len(directions[0]), len(names)
    modules = dict(module.named_modules())
    owned: dict[str, list[tuple[int, str]]] = {}
    for l, name in enumerate(names):
        owner, _, leaf = name.rpartition(".")
        owned.setdefault(owner, []).append((l, leaf))
    calls: list[tuple[str, torch.Tensor, torch.Tensor, int, int]] = []

    def record(owner: str):
        def hook(mod, inputs, out):
            if len(inputs) != 1 or not isinstance(out, torch.Tensor):
                raise NotImplementedError(f"layer '{owner}' ({type(mod).__name__}) takes several inputs or returns "
                                          "several outputs: its per-image derivatives are not supported")
            calls.append((owner, inputs[0], out, inputs[0]._version, out._version))
        return hook

    handles = [modules[owner].register_forward_hook(record(owner)) for owner in owned]
    try:
        with torch.enable_grad():
            value = output(functional_call(module, weights, (x.detach().clone().requires_grad_(True),)))
            deltas = torch.autograd.grad(value.sum(), [c[2] for c in calls], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    out = torch.zeros(len(x), n, L, dtype=directions[0].dtype)
    with torch.no_grad():
        for (owner, a, y, a_version, y_version), d in zip(calls, deltas):
            if a._version != a_version or y._version != y_version:
                raise RuntimeError(f"layer '{owner}': its input or output was changed in place after it ran, so its "
                                   "per-image derivatives cannot be read from them")
            if d is None:
                continue
            mod, prefix = modules[owner], f"{owner}." if owner else ""
            w = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            own = owned[owner]
            if isinstance(mod, nn.Conv2d) and mod.padding_mode == "zeros" and not isinstance(mod.padding, str):
                for l, p in own:
                    out[:, :, l] += _conv_weight(mod, a, d, directions[l]) if p == "weight" else _bias(d, directions[l], 1)
            elif isinstance(mod, nn.Linear):
                for l, p in own:
                    out[:, :, l] += _linear_weight(a, d, directions[l]) if p == "weight" else _bias(d, directions[l], -1)
            else:
                grads = _frozen_batch_norm(mod, a, d, w) if _is_frozen_bn(mod) else _any_layer(mod, a, d, [p for _, p in own], w)
                for l, p in own:
                    out[:, :, l] += grads[p].flatten(1) @ directions[l].flatten(1).T
    return value.detach(), out
