"""Instant's per-person solve: Newton in the span of the support's features vs L-BFGS over λ.

A person's λ minimises ``loss(offset + X λ) + (l2 / k) ‖λ − λ0‖²``
(``aestimo.personalization.methods.linear_problem``). From k = 50 on, instant fits
every value of its pull grid on every cross-validation fold first: 13 solves
per person at the default grid (4 values × 3 folds + the final fit). The
baseline is the previous solver, L-BFGS over the n × L coefficients (strong
Wolfe line search, the same tolerances); the new one is Newton's method on
the k coefficients of λ − λ0 in the span of the feature rows, whose kernel is
shared by the folds. Both run here on the same synthetic people (features
scaled and correlated like a default run's, ratings from a hidden λ plus noise); the script
prints the time per person of each, the ratio, and the largest |Δλ|.

    python bench/instant_solve.py [--people 20] [--k 100] [--sources 6] [--layers 151] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401
import numpy as np
import torch
from _common import add_threads_arg, fmt_s, header

from aestimo.personalization.methods.linear_problem import LinearObjective, LinearProblem, _lbfgs
from aestimo.training.losses import person_loss

RANK = person_loss("rank")

GRID = (0.3, 1.0, 3.0, 10.0)


def people(args) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(args.people):
        n, L = args.sources, args.layers
        base = 5 + 0.3 * torch.randn(args.k, generator=g)
        # a default run's features are ~1e-2 and strongly correlated: the experts share θ0 and
        # move alike, and layers move with a few image factors
        factors = torch.randn(args.k, 4, generator=g) @ torch.randn(4, L, generator=g)
        phi = 0.01 * (factors[:, None, :] + 0.2 * torch.randn(args.k, n, L, generator=g))
        at = torch.full((n, L), 1 / n)
        hidden = at + 2.0 * torch.randn(n, L, generator=g)
        y = base + ((hidden - at) * phi).flatten(1).sum(1) + 0.05 * torch.randn(args.k, generator=g)
        out.append((base, phi, at, y))
    return out


def folds(k: int, seed: int) -> list[torch.Tensor]:
    order = np.random.default_rng(seed).permutation(k)
    return [torch.as_tensor(np.setdiff1d(order, held)) for held in np.array_split(order, 3)]


def newton_person(base, phi, at, y) -> list[torch.Tensor]:
    problem, init = LinearProblem.of(base, phi, at), at.clone()
    lams = [problem.subset(train).solve(y[train], init, RANK, v) for train in folds(len(y), 0) for v in GRID]
    return lams + [problem.solve(y, init, RANK, 1.0)]


def lbfgs_person(base, phi, at, y) -> list[torch.Tensor]:
    def one(rows, v):
        p = LinearProblem.of(base[rows], phi[rows], at)
        return _lbfgs(LinearObjective(p.offset, p.feats, y[rows].double(), at.double().flatten(), RANK, v), 200).float().reshape(at.shape)

    everyone = torch.arange(len(y))
    return [one(train, v) for train in folds(len(y), 0) for v in GRID] + [one(everyone, 1.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--sources", type=int, default=6)
    ap.add_argument("--layers", type=int, default=151)
    add_threads_arg(ap)
    args = ap.parse_args()
    header("instant's per-person solve (13 solves: 4 pulls x 3 folds + the fit): Newton vs L-BFGS", args)
    data = people(args)
    times, results = {}, {}
    for name, fn in (("L-BFGS over λ", lbfgs_person), ("Newton in the span", newton_person)):
        fn(*data[0])  # warm-up
        t0 = time.perf_counter()
        results[name] = [fn(*p) for p in data]
        times[name] = (time.perf_counter() - t0) / len(data)
        print(f"   {name:20s}: {fmt_s(times[name])} per person")
    diff = max(float((a - b).abs().max()) for pa, pb in zip(*results.values()) for a, b in zip(pa, pb))
    print(f"   Newton vs L-BFGS: {times['L-BFGS over λ'] / times['Newton in the span']:.1f}x faster; max |Δλ| {diff:.1e}")


if __name__ == "__main__":
    main()
