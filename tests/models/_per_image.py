"""The reference both layer-derivative tests check against: per-image gradients from torch.func."""

import torch
from torch.func import functional_call, grad, vmap


def per_image_derivatives(net, weights, names, directions, x, template: torch.Tensor) -> torch.Tensor:
    """⟨per-image gradient of each parameter tensor, each direction⟩ of ``probs @ template``, from torch.func
    on the whole network: ``(B, n, L)``."""
    params = {n: weights[n] for n in names}
    buffers = {k: v for k, v in weights.items() if k not in params}

    def score(p, xb):
        return functional_call(net, {**p, **buffers}, (xb[None],))[0] @ template

    per_image = vmap(grad(score), in_dims=(None, 0))(params, x)
    return torch.stack([torch.einsum("b...,n...->bn", per_image[n], d) for n, d in zip(names, directions)], dim=-1)
