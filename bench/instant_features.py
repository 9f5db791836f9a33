"""Instant's per-image features: layer by layer from one backward pass vs torch.func per-image gradients.

Instant personalization needs, for every support image, ``φ[i, l] = ⟨∂s/∂θ_l, τ[i, l]⟩``
(``aestimo.personalization.methods.linearized.score_features``, built on
``aestimo.models.layer_derivatives``). The previous code took per-image
gradients of the whole merged network with ``torch.func`` (``vmap`` of
``grad``, the baseline here, a few lines below) and dotted them with the task
vectors. The new code records each layer's input and output gradient in one
ordinary forward and backward pass and applies a rule per layer type. This
script times both on ``--n`` random images at the uniform point and prints
the per-image times, the ratio, and the largest relative difference of the
features per image.

Setup (no data, no network): EfficientNet-Lite0 at ``--size`` px with the
package's ImageNet weights (``--weights package``, default) or random ones,
``--experts`` fake experts (θ0 plus 1 % noise on the parameters).

    python bench/instant_features.py [--n 96] [--size 64] [--experts 6] [--batch 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401
import torch
from _common import add_threads_arg, fmt_s, header, lite0_with_fake_experts
from torch.func import grad_and_value, vmap

from aestimo.data.images import to_float
from aestimo.models.merged import MergedScorer
from aestimo.models.scorer import template_tensor
from aestimo.personalization.methods.linearized import score_features


def per_image_gradients(merged: MergedScorer, x: torch.Tensor, at: torch.Tensor, template: torch.Tensor, batch: int):
    """The baseline: ∂s/∂λ per image by torch.func through the (folded) merged scorer."""
    per_image = vmap(grad_and_value(lambda lam, xi: merged(xi[None], lam)[0] @ template), in_dims=(None, 0))
    out = [per_image(at, x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat([v for _, v in out]), torch.cat([g for g, _ in out])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", choices=["package", "random"], default="package")
    add_threads_arg(ap)
    args = ap.parse_args()
    header("instant's per-image features: layer rules vs torch.func per-image gradients", args)
    make, theta0, tv = lite0_with_fake_experts(args.weights, args.experts)
    g = torch.Generator().manual_seed(1)
    merged = MergedScorer(make(), theta0, tv, probe_shape=(2, 3, args.size, args.size))
    x = to_float(torch.randint(0, 256, (args.n, 3, args.size, args.size), dtype=torch.uint8, generator=g), (0.5,) * 3, (0.25,) * 3)
    x = x.contiguous(memory_format=torch.channels_last)
    template = template_tensor("ten")
    at = torch.full(merged.shape, 1.0 / merged.shape[0])
    ways = {"torch.func per image": lambda: per_image_gradients(merged, x, at, template, args.batch),
            "layer rules": lambda: score_features(merged, x, at, template, args.batch)}
    results, times = {}, {k: [] for k in ways}
    for name, fn in ways.items():  # warm-up (oneDNN primitives)
        fn()
    for _ in range(args.repeats):  # interleaved: a busy moment lands on both
        for name, fn in ways.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append((time.perf_counter() - t0) / args.n)
    per = {k: min(v) for k, v in times.items()}
    for name, t in per.items():
        print(f"   {name:22s}: {fmt_s(t)} per image (best of {args.repeats})")
    (b0, p0), (b1, p1) = results.values()
    rel = float(((p1 - p0).flatten(1).norm(dim=1) / p0.flatten(1).norm(dim=1)).max())
    print(f"   layer rules vs torch.func: {per['torch.func per image'] / per['layer rules']:.2f}x faster; "
          f"max |Δ base score| {float((b1 - b0).abs().max()):.1e}, max relative |Δφ| per image {rel:.1e}")


if __name__ == "__main__":
    main()
