"""Per-image directional derivatives of a network's output, one per parameter tensor and direction.

For images ``x_b``, parameter tensors ``θ_l`` and directions ``d[i, l]`` (one
stack of ``n`` directions per tensor), :func:`directional_derivatives` returns

    D[b, i, l] = ⟨∂f(x_b)/∂θ_l, d[i, l]⟩

for a scalar output ``f``. With the task vectors as directions these are the
linearized merged scorer's features ∂s/∂λ (:mod:`aestimo.personalization.methods.linearized`).

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
  over more than a few tokens (a ViT's ``qkv``, ``proj``, ``fc1``, ``fc2``)
  the image's weight gradient ``Σ_tokens δ ⊗ a`` instead, dotted with the
  directions;
* frozen batch norms (timm's ``BatchNormAct2d`` too): per-channel sums of
  ``δ`` (before the activation) and of ``δ · x̂``;
* layer norms (``nn.LayerNorm``, timm's ``LayerNorm``): per-feature sums over
  the tokens of ``δ`` and of ``δ · x̂``; timm's ``LayerScale``: of ``δ · a``;
* a timm ``VisionTransformer``'s own tensors (``cls_token``, ``reg_token``,
  ``pos_embed``), which no layer owns: they are added to or put in front of
  the patch tokens just before ``pos_drop``, so the image's gradient of each
  is a slice of ``δ`` at ``pos_drop``'s output (recorded by a hook there);
* any other layer: ``torch.func`` per image on that layer alone.

2.3–2.8× faster than per-image gradients of the whole network on one CPU
thread for EfficientNet-Lite0 at 64 px (``bench/instant_features.py``), equal
to them up to float32 rounding (tests/models/test_layer_derivatives.py; for a
ViT tests/models/test_vit_backbone.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame, LayerScale
from timm.layers import LayerNorm as TimmLayerNorm
from timm.layers.padding import pad_same
from timm.models.vision_transformer import VisionTransformer
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
    if a.shape[1] > FEW_POSITIONS:  # many tokens: the image's weight gradient, then the directions
        return torch.bmm(d.transpose(1, 2), a).reshape(a.shape[0], -1) @ dirs.reshape(n, -1).T
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


def _token_sums(t: torch.Tensor, feature_dims: int) -> torch.Tensor:
    """``t`` summed over every dimension but the first (images) and the last ``feature_dims``."""
    dims = tuple(range(1, t.dim() - feature_dims))
    return t.sum(dims) if dims else t  # (an empty tuple would sum over everything)


def _layer_norm(mod: nn.LayerNorm, a: torch.Tensor, d: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image gradients of a layer norm's weight and bias: sums over the tokens of ``δ · x̂`` and ``δ``."""
    k = len(mod.normalized_shape)
    xhat = F.layer_norm(a, mod.normalized_shape, None, None, mod.eps)
    return {"weight": _token_sums(d * xhat, k), "bias": _token_sums(d, k)}


def _is_layer_norm(mod: nn.Module) -> bool:
    """A layer norm over the trailing dimensions, as ``nn.LayerNorm`` computes it (not timm's
    channels-first ``LayerNorm2d``, which subclasses it)."""
    return type(mod) in (nn.LayerNorm, TimmLayerNorm) and mod.elementwise_affine


def _is_layer_scale(mod: nn.Module) -> bool:
    return type(mod) is LayerScale and not mod.inplace


#: a VisionTransformer's own tensors, which no layer owns
TOKEN_PARAMETERS = ("cls_token", "reg_token", "pos_embed")


def _token_layout(mod: nn.Module) -> bool:
    """Whether ``mod`` is a timm ``VisionTransformer`` whose tokens enter as its ``_pos_embed`` does:
    ``[cls_token, reg_token, patches] (+ pos_embed)`` just before ``pos_drop``, at a fixed size."""
    return (isinstance(mod, VisionTransformer) and type(mod)._pos_embed is VisionTransformer._pos_embed
            and isinstance(getattr(mod, "pos_drop", None), nn.Module) and not mod.dynamic_img_size)


def _token_grads(mod: nn.Module, d: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image gradients of ``cls_token``, ``reg_token`` and ``pos_embed`` from ``δ`` ``(B, tokens, D)``
    at ``pos_drop``'s output (``VisionTransformer._pos_embed``: the prefix tokens are put in front
    of the patches, ``pos_embed`` added to all tokens, or only to the patches with ``no_embed_class``)."""
    out, start = {}, 0
    for name in ("cls_token", "reg_token"):
        token = getattr(mod, name, None)
        if token is not None:
            out[name] = d[:, start : start + token.shape[1]]
            start += token.shape[1]
    if mod.pos_embed is not None:
        out["pos_embed"] = d[:, start:] if mod.no_embed_class else d
        if out["pos_embed"].shape[1:] != mod.pos_embed.shape[1:]:
            raise RuntimeError(f"pos_embed {tuple(mod.pos_embed.shape)} does not match the tokens {tuple(d.shape)}")
    return out


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
    tokens: dict[str, list[tuple[int, str]]] = {}  # a ViT's cls_token / reg_token / pos_embed, by ViT
    for l, name in enumerate(names):
        owner, _, leaf = name.rpartition(".")
        rule = tokens if leaf in TOKEN_PARAMETERS and _token_layout(modules[owner]) else owned
        rule.setdefault(owner, []).append((l, leaf))
    calls: list[tuple[str, torch.Tensor, torch.Tensor, int, int]] = []
    token_calls: list[tuple[str, torch.Tensor, int]] = []

    def record(owner: str):
        def hook(mod, inputs, out):
            if len(inputs) != 1 or not isinstance(out, torch.Tensor):
                raise NotImplementedError(f"layer '{owner}' ({type(mod).__name__}) takes several inputs or returns "
                                          "several outputs: its per-image derivatives are not supported")
            calls.append((owner, inputs[0], out, inputs[0]._version, out._version))
        return hook

    def record_tokens(owner: str):
        def hook(mod, inputs, out):
            token_calls.append((owner, out, out._version))
        return hook

    handles = [modules[owner].register_forward_hook(record(owner)) for owner in owned]
    handles += [modules[owner].pos_drop.register_forward_hook(record_tokens(owner)) for owner in tokens]
    try:
        with torch.enable_grad():
            value = output(functional_call(module, weights, (x.detach().clone().requires_grad_(True),)))
            deltas = torch.autograd.grad(value.sum(), [c[2] for c in calls] + [t[1] for t in token_calls],
                                         allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    deltas, token_deltas = deltas[: len(calls)], deltas[len(calls) :]
    out = directions[0].new_zeros((len(x), n, L))
    with torch.no_grad():
        if sorted(t[0] for t in token_calls) != sorted(tokens):
            raise RuntimeError("a VisionTransformer's pos_drop did not run exactly once per forward: the per-image "
                               "derivatives of its cls_token / pos_embed cannot be read from it")
        for (owner, y, y_version), d in zip(token_calls, token_deltas):
            if y._version != y_version:
                raise RuntimeError(f"'{owner}': its tokens were changed in place after pos_drop")
            if d is None:
                continue
            grads = _token_grads(modules[owner], d)
            for l, p in tokens[owner]:
                out[:, :, l] += grads[p].flatten(1) @ directions[l].flatten(1).T
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
                if _is_frozen_bn(mod):
                    grads = _frozen_batch_norm(mod, a, d, w)
                elif _is_layer_norm(mod):
                    grads = _layer_norm(mod, a, d)
                elif _is_layer_scale(mod):
                    grads = {"gamma": _token_sums(d * a, 1)}
                else:
                    grads = _any_layer(mod, a, d, [p for _, p in own], w)
                for l, p in own:
                    out[:, :, l] += grads[p].flatten(1) @ directions[l].flatten(1).T
    return value.detach(), out
