"""Stage 1 (head only): cached backbone features vs running the frozen backbone every step.

Both paths run the project's own loop, ``aestimo.training.experts.train_head``:

* new: backbone features of every training image computed once (no_grad,
  eval mode), then ``train_head`` on that tensor;
* baseline: the same ``train_head`` given a lazy "feature tensor" whose
  ``[idx]`` runs ``scorer.features`` under no_grad on the batch's pixels, so
  the frozen backbone runs at every step (what stage 1 would cost without the
  cache).

Per-step times come from a global optimizer-step hook (median, first step
dropped). Validation runs once, after the last step, on cached features in
both paths, so it is outside every measured step. Prints the per-step ratio
and the end-to-end ratio at the pipeline's stage-1 length (feature extraction
counted once for the cached path).

    python bench/stage1_cached_features.py [--weights random|package] [--size 64]
        [--batch 128] [--baseline-steps 30] [--cached-steps 300] [--n-train 512]
"""

from __future__ import annotations

import argparse
import copy

import _common  # noqa: F401  (sets offline / quiet env first)
import torch
from _common import add_threads_arg, StepClock, fmt_s, header, maxrss_mib, timer

from aestimo.models.scorer import build_scorer, template_tensor
from aestimo.training.data import Labels
from aestimo.training.experts import StageConfig, train_head


class LazyFeatures:
    """Looks like the ``feats_train`` tensor to ``train_head`` but runs the frozen backbone on each batch."""

    def __init__(self, scorer, pixels: torch.Tensor):
        self.scorer, self.pixels = scorer, pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, idx):
        with torch.no_grad():
            return self.scorer.features(self.pixels[idx])


def make_labels(n: int, template: torch.Tensor, gen: torch.Generator) -> Labels:
    lo, hi = float(template.min()), float(template.max())
    score = lo + (hi - lo) * torch.rand(n, generator=gen)
    dist = torch.distributions.Dirichlet(torch.ones(10)).sample((n,))
    dist[n // 2 :] = float("nan")  # half the rows without a histogram (MSE only), like mixed sources
    return Labels(score, dist)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", choices=["random", "package"], default="random")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--baseline-steps", type=int, default=30)
    ap.add_argument("--cached-steps", type=int, default=300)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-val", type=int, default=64)
    ap.add_argument("--reference-steps", type=int, default=3000, help="stage-1 length for the end-to-end estimate")
    ap.add_argument("--seed", type=int, default=0)
    add_threads_arg(ap)
    args = ap.parse_args()
    header("stage 1: cached features vs frozen backbone at every step", args)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    scorer = build_scorer(weights=None if args.weights == "random" else "package", head_seed=0, allow_random=True).eval()
    for p in scorer.backbone.parameters():
        p.requires_grad_(False)
    template = template_tensor("ten")
    x_train = torch.randn(args.n_train, 3, args.size, args.size, generator=gen)
    x_val = torch.randn(args.n_val, 3, args.size, args.size, generator=gen)
    y_train, y_val = make_labels(args.n_train, template, gen), make_labels(args.n_val, template, gen)

    t: dict[str, float] = {}
    with torch.no_grad(), timer(t, "extract"):
        feats_train = torch.cat([scorer.features(x_train[i : i + 128]) for i in range(0, args.n_train, 128)])
        feats_val = torch.cat([scorer.features(x_val[i : i + 128]) for i in range(0, args.n_val, 128)])
    extract_per_image = t["extract"] / (args.n_train + args.n_val)

    def cfg(steps: int) -> StageConfig:
        return StageConfig(steps=steps, batch_size=args.batch, lr_head=(1.5e-5, 1.5e-6), eval_every=steps, patience=0, checkpoint_every=steps)

    head_new = copy.deepcopy(scorer.head)
    with StepClock() as clock_new, timer(t, "new"):
        train_head(head_new, feats_train, y_train, feats_val, y_val, template, cfg(args.cached_steps), args.seed)
    head_base = copy.deepcopy(scorer.head)
    with StepClock() as clock_base, timer(t, "base"):
        train_head(head_base, LazyFeatures(scorer, x_train), y_train, feats_val, y_val, template, cfg(args.baseline_steps), args.seed)

    step_new, step_base = clock_new.median(), clock_base.median()
    ref = args.reference_steps
    e2e_new = extract_per_image * args.n_train + ref * step_new
    e2e_base = ref * step_base
    print(f"   feature extraction (once): {fmt_s(t['extract'])} for {args.n_train + args.n_val} images "
          f"({extract_per_image * 1e3:.2f} ms/image)")
    print(f"   cached features : {args.cached_steps:5d} steps in {fmt_s(t['new'])}  median step {fmt_s(step_new)}")
    print(f"   backbone / step : {args.baseline_steps:5d} steps in {fmt_s(t['base'])}  median step {fmt_s(step_base)}")
    print(f"   per-step speed-up (baseline / cached)           : {step_base / step_new:8.1f}x   (issue asks >= 20x)")
    print(f"   end-to-end at {ref} steps, {args.n_train} train images, extraction counted once:")
    print(f"      cached {fmt_s(e2e_new)}   baseline {fmt_s(e2e_base)}   speed-up {e2e_base / e2e_new:8.1f}x")
    print(f"   peak RSS {maxrss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
