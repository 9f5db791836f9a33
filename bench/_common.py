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
    ``aestimo.personalization.task_vectors._run``) own their optimizers, so this is how a
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
