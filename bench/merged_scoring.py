"""Scoring a query with the exact merged model: folded (the default) vs as the module is.

Every personalization run that keeps λ (instant, λ0 alone, the hybrid, exact)
scores its query images with the merged model at that λ, and in the default
run that is most of the personalize stage. ``MergedScorer`` folds each merge's
batch norms into its convolutions and replaces timm's per-call "same" padding
by a fixed one (``aestimo.models.folding``), and scores in batches of at most
``SCORE_BATCH`` images per thread. This script times ``MergedScorer.probs`` at random λ on
``--n`` random images both ways, each in its own best batch size and in the
other's, and prints the per-image times, the ratio, and the largest
difference in the bin probabilities.

Setup (no data, no network): EfficientNet-Lite0 at ``--size`` px, the
package's ImageNet weights (``--weights package``, default) or random ones
(``--weights random``), batch-norm statistics as they come, ``--experts``
fake experts (θ0 plus noise on the parameters).

    python bench/merged_scoring.py [--n 160] [--size 64] [--experts 6] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common  # noqa: F401
import torch
from _common import add_threads_arg, fmt_s, header, lite0_with_fake_experts

from aestimo.bundle import TensorBundle  # noqa: F401  (the task vectors' container)
from aestimo.data.images import to_float
from aestimo.models.inference import SCORE_BATCH
from aestimo.models.merged import MergedScorer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=160, help="query images (a k = 10 person has ~150)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--weights", choices=["package", "random"], default="package")
    add_threads_arg(ap)
    args = ap.parse_args()
    header("exact scoring of a query by the merged model: folded vs plain", args)
    make, theta0, tv = lite0_with_fake_experts(args.weights, args.experts)
    g = torch.Generator().manual_seed(1)
    shape = (2, 3, args.size, args.size)
    plain = MergedScorer(make(), theta0, tv, fold=False)
    folded = MergedScorer(make(), theta0, tv, probe_shape=shape)
    x = to_float(torch.randint(0, 256, (args.n, 3, args.size, args.size), dtype=torch.uint8, generator=g), (0.5,) * 3, (0.25,) * 3)
    x = x.contiguous(memory_format=torch.channels_last)
    n, L = plain.shape
    lams = [torch.rand(n, L, generator=g) / n for _ in range(args.repeats + 1)]

    def per_image(merged: MergedScorer, batch: int) -> float:
        merged.probs(x, lams[0], batch)  # warm-up (oneDNN primitives)
        times = []
        for lam in lams[1:]:
            t0 = time.perf_counter()
            merged.probs(x, lam, batch)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) / args.n

    b = SCORE_BATCH
    rows = {("plain", 128): per_image(plain, 128), ("plain", b): per_image(plain, b),
            ("folded", 128): per_image(folded, 128), ("folded", b): per_image(folded, b)}
    for (kind, batch), t in rows.items():
        print(f"   {kind:6s} batch {batch:3d}: {fmt_s(t)} per image")
    diff = max(float((plain.probs(x, lam) - folded.probs(x, lam)).abs().max()) for lam in lams[:2])
    before, after = rows[("plain", 128)], rows[("folded", b)]
    print(f"   folded in batches of {b} vs the previous default (plain, batches of 128): {before / after:.2f}x faster")
    print(f"   folding alone (both in batches of {b}): {rows[('plain', b)] / after:.2f}x; "
          f"max |Δ bin probability| {diff:.2e}")


if __name__ == "__main__":
    main()
