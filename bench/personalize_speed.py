"""Personalization speed: one person, many people (vmap vs loop), and scoring with a personal model.

Setup (no data, no network): a random-initialised scorer (θ0, ``weights=None,
allow_random=True``) and ``--experts`` fake experts, each θ0 plus small noise
on the *parameters* (buffers, i.e. batch-norm statistics, identical to θ0, as
expert fine-tuning keeps them). ``aestimo.models.merged.build_task_vectors`` turns
them into layer-wise task vectors and ``MergedScorer`` runs the merged model.
People are random images (uint8 -> ``to_float``) with random scores on the
"five" template and random expert zero-shot scores.

(a) ``personalize`` for one person with the exact method (layer-wise λ,
    Bradley–Terry rank loss, SROCC init), ``--k`` images, batch ``--batch``,
    ``--steps`` steps: median step time (optimizer-step hook), extrapolation
    to the papers' 500 steps and to conf/base's 100, and peak RSS.
(b) ``--people`` people: ``personalize(..., batched=False)`` (one by one)
    vs ``batched=True`` (vmap over people), ``--people-steps`` steps each;
    max |λ_loop - λ_batched| and the time ratio, whichever way it goes.
(c) scoring ``--n-score`` images with a personal model merged once
    (``MergedScorer.state_dict(λ)`` loaded into a plain scorer) vs the plain
    θ0 scorer; also the cost of the merge itself and of scoring through
    ``MergedScorer`` (which re-merges on every call).

    python bench/personalize_speed.py [--steps 50] [--k 100] [--batch 32] [--people 16]
        [--people-steps 5] [--n-score 256] [--size 64] [--experts 6] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common  # noqa: F401
import numpy as np
import torch
from _common import StepClock, add_threads_arg, fake_experts, fmt_s, header, maxrss_mib, timer

from aestimo.data.images import to_float
from aestimo.models.scorer import build_scorer, template_tensor
from aestimo.personalization.methods.task_vectors import Person, LambdaOptions, personalize
from aestimo.bundle import TensorBundle
from aestimo.models.merged import MergedScorer, build_task_vectors, merge_state

NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def make_person(key: str, k: int, size: int, n_experts: int, seed: int) -> Person:
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (k, 3, size, size), dtype=torch.uint8, generator=gen)
    y = torch.round(torch.rand(k, generator=gen) * 8 + 1) / 2  # 0.5..4.5 in steps of 0.5, with ties
    scores = np.random.default_rng(seed).uniform(0.5, 5.0, size=(n_experts, k))
    return Person(key, to_float(pixels, *NORM), y, scores, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--people", type=int, default=16)
    ap.add_argument("--people-steps", type=int, default=5)
    ap.add_argument("--check-people", type=int, default=4, help="people whose scores are compared in (b)")
    ap.add_argument("--n-score", type=int, default=256)
    ap.add_argument("--score-repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--experts", type=int, default=6)
    ap.add_argument("--noise", type=float, default=0.02, help="expert noise relative to each tensor's mean |value|")
    ap.add_argument("--seed", type=int, default=0)
    add_threads_arg(ap)
    args = ap.parse_args()
    header("personalization speed", args)
    torch.manual_seed(args.seed)

    scorer = build_scorer(weights=None, head_seed=0, allow_random=True).eval()
    theta0, experts = fake_experts(scorer, args.experts, args.noise, args.seed)
    tv = build_task_vectors(scorer, theta0, experts)
    merged = MergedScorer(scorer, theta0, tv)
    n, L = merged.shape
    template = template_tensor("five")
    print(f"   task vectors: n={n} sources x L={L} parameter tensors = {n * L} coefficients")

    # ---------------------------------------------------------------- (a) one person
    person = make_person("p0", args.k, args.size, n, args.seed)
    cfg = LambdaOptions(steps=args.steps, batch_size=args.batch)
    rss0 = maxrss_mib()
    t: dict[str, float] = {}
    with StepClock() as clock, timer(t, "one"):
        lam1 = personalize(merged, [person], template, cfg, progress=False)
    step = clock.median()
    print(f"(a) one person, k={args.k}, batch {min(args.batch, args.k)}, {args.steps} steps: {fmt_s(t['one'])} total, "
          f"median step {fmt_s(step)}")
    print(f"    extrapolated: 500 steps (papers) {fmt_s(500 * step)}   100 steps (conf/base) {fmt_s(100 * step)}")
    print(f"    peak RSS {maxrss_mib():.0f} MiB (was {rss0:.0f} MiB before, +{maxrss_mib() - rss0:.0f} MiB)   "
          f"λ shape {tuple(lam1.shape)}")

    # ---------------------------------------------------------------- (b) loop vs vmap
    people = [make_person(f"p{i}", args.k, args.size, n, args.seed + 1 + i) for i in range(args.people)]
    cfg_b = LambdaOptions(steps=args.people_steps, batch_size=args.batch)
    rss_before_loop = maxrss_mib()
    with timer(t, "loop"):
        lam_loop = personalize(merged, people, template, cfg_b, batched=False, progress=False)
    rss_after_loop = maxrss_mib()
    with timer(t, "vmap"):
        lam_vmap = personalize(merged, people, template, cfg_b, batched=True, progress=False)
    rss_after_vmap = maxrss_mib()
    d = (lam_loop - lam_vmap).abs()
    diff, moved = float(d.max()), float(lam_loop.abs().max())
    # what the difference does to the personal models: scores of the first few people on their own images
    with torch.no_grad():
        pdiff = max(
            float((merged(p.x, lam_loop[j]) @ template - merged(p.x, lam_vmap[j]) @ template).abs().max())
            for j, p in enumerate(people[: args.check_people])
        )
    print(f"(b) {args.people} people x {args.people_steps} steps (k={args.k}, batch {min(args.batch, args.k)}):")
    print(f"    one by one {fmt_s(t['loop'])}   batched (vmap) {fmt_s(t['vmap'])}   "
          f"speed-up loop/batched {t['loop'] / t['vmap']:.2f}x ({'batched faster' if t['vmap'] < t['loop'] else 'batched SLOWER'})")
    print(f"    max |λ_loop - λ_batched| = {diff:.3e}  (max |λ| = {moved:.3f}; "
          f"{float((d > 1e-3).float().mean()) * 100:.1f} % of coefficients differ by > 1e-3)")
    print(f"    max |score_loop - score_batched| on the first {min(args.check_people, args.people)} people's "
          f"{args.k} images = {pdiff:.3e} (template 0.5..5)")
    print(f"    peak RSS after loop {rss_after_loop:.0f} MiB (+{rss_after_loop - rss_before_loop:.0f}), "
          f"after batched {rss_after_vmap:.0f} MiB (+{rss_after_vmap - rss_after_loop:.0f})")

    # ---------------------------------------------------------------- (c) scoring
    lam = lam1[0]
    with timer(t, "merge"):
        sd = merge_state(TensorBundle(theta0), tv, lam)
    personal = build_scorer(weights=None, head_seed=0, allow_random=True)
    personal.load_state_dict(sd)
    personal.eval()
    gen = torch.Generator().manual_seed(args.seed + 999)
    x = to_float(torch.randint(0, 256, (args.n_score, 3, args.size, args.size), dtype=torch.uint8, generator=gen), *NORM)

    def score(model) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(x), 128):
                model(x[i : i + 128]) @ template
        return time.perf_counter() - t0

    def score_merged() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(x), 128):
                merged(x[i : i + 128], lam) @ template
        return time.perf_counter() - t0

    score(scorer), score(personal)  # warm-up
    plain, pers, via = [], [], []
    for _ in range(args.score_repeats):  # interleaved so load swings hit all alike
        plain.append(score(scorer))
        pers.append(score(personal))
        via.append(score_merged())
    tp, tq, tm = statistics.median(plain), statistics.median(pers), statistics.median(via)
    with torch.no_grad():
        agree = float((personal(x[:64]) - merged(x[:64], lam)).abs().max())
    print(f"(c) scoring {args.n_score} images (median of {args.score_repeats}):")
    print(f"    plain θ0 scorer {fmt_s(tp)}   personal (merged once) {fmt_s(tq)}   ratio personal/plain {tq / tp:.3f}")
    print(f"    one-off merge (state_dict(λ)) {fmt_s(t['merge'])}   via MergedScorer (merge per call) {fmt_s(tm)} "
          f"({tm / tp:.2f}x plain)")
    print(f"    max |personal(x) - MergedScorer(x, λ)| = {agree:.3e} (bin probabilities)")


if __name__ == "__main__":
    main()
