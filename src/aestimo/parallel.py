"""Personalize many people across worker processes.

Each person's λ depends only on that person (their support images, their
seed), so the runs are independent and split across processes without
changing what any one of them computes. Measured on 2 CPU cores
(bench/personalize_workers.py): two one-thread workers run the same people
1.48x faster than one process with one thread and 1.05-1.09x faster than one
process with two intra-op threads, with λ bit-identical to the one-thread run.

Workers are spawned (never forked: the OpenMP runtime PyTorch ships is not
fork-safe once used) and build their own :class:`~aestimo.taskvec.MergedScorer`
from θ0 and τ, which travel once, packed into one shared-memory tensor per
dtype. Every worker runs with one intra-op thread, so a run's numbers do not
depend on how many workers there are or which one picked it up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import torch
import torch.multiprocessing as tmp
from tqdm.auto import tqdm

from aestimo import experts
from aestimo.datasets.safetensors_dataset import TensorBundle
from aestimo.imagecache import center_view, to_float
from aestimo.personalize import Person, PersonalizeConfig, personalize, predict
from aestimo.taskvec import MergedScorer


@dataclass
class Images:
    """The cached images (uint8, NCHW) and how the model sees them (centre crop, normalisation)."""

    pixels: torch.Tensor
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        return to_float(center_view(self.pixels[rows], self.crop), self.mean, self.std)


@dataclass
class Job:
    """One personalization run: learn λ on the support images under ``cfg``, then score the query
    images. Images are rows of :class:`Images`, so a job is small to send to a worker."""

    key: str
    support: torch.Tensor  # rows
    y: torch.Tensor  # support scores on the template scale
    expert_scores: np.ndarray  # (n_experts, k): each expert's zero-shot score of the support images
    seed: int
    query: torch.Tensor  # rows
    template: torch.Tensor
    cfg: PersonalizeConfig

    def person(self, images: Images) -> Person:
        return Person(self.key, images(self.support), self.y, self.expert_scores, self.seed)


@dataclass
class Result:
    lam: torch.Tensor
    scores: torch.Tensor  # of the job's query images, on the template scale
    seconds: float  # time spent learning λ


def run_job(merged: MergedScorer, images: Images, job: Job) -> Result:
    t0 = time.perf_counter()
    lam = personalize(merged, [job.person(images)], job.template, job.cfg, progress=False)[0]
    seconds = time.perf_counter() - t0
    return Result(lam, predict(merged, images(job.query), lam, job.template), seconds)


def pack(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[tuple[str, str, tuple[int, ...], int]]]:
    """Concatenate tensors into one flat tensor per dtype, plus (name, dtype, shape, offset) specs.

    Sending a few big tensors to a worker costs a few shared-memory handles,
    not one per parameter.
    """
    flat: dict[str, list[torch.Tensor]] = {}
    specs, offsets = [], {}
    for name, t in tensors.items():
        key = str(t.dtype)
        specs.append((name, key, tuple(t.shape), offsets.get(key, 0)))
        offsets[key] = offsets.get(key, 0) + t.numel()
        flat.setdefault(key, []).append(t.detach().reshape(-1))
    return {k: torch.cat(v) for k, v in flat.items()}, specs


def unpack(flat: dict[str, torch.Tensor], specs) -> dict[str, torch.Tensor]:
    return {name: flat[key][off : off + math.prod(shape)].view(shape) for name, key, shape, off in specs}


_MERGED: MergedScorer | None = None
_IMAGES: Images | None = None


def _init_worker(theta_flat, theta_specs, theta_meta, tau_flat, tau_specs, tau_meta, images) -> None:
    global _MERGED, _IMAGES
    _IMAGES = images
    torch.set_num_threads(1)
    theta0 = TensorBundle(unpack(theta_flat, theta_specs), theta_meta)
    tau = TensorBundle(unpack(tau_flat, tau_specs), tau_meta)
    _MERGED = experts.merged_scorer(theta0, tau)


def _work(i: int, job: Job) -> tuple[int, Result]:
    assert _MERGED is not None and _IMAGES is not None
    return i, run_job(_MERGED, _IMAGES, job)


def run_jobs(
    theta0: TensorBundle,
    task_vectors: TensorBundle,
    images: Images,
    jobs: Sequence[Job],
    workers: int = 1,
    desc: str = "personalize",
) -> list[Result]:
    """Run every job; results in the order of ``jobs``.

    ``workers <= 1`` runs them here, in order;
    otherwise a pool of spawned one-thread workers shares them out.
    """
    if workers <= 1 or len(jobs) <= 1:
        merged = experts.merged_scorer(theta0, task_vectors)
        return [run_job(merged, images, j) for j in tqdm(jobs, desc=desc, leave=False)]
    theta_flat, theta_specs = pack(theta0.tensors)
    tau_flat, tau_specs = pack(task_vectors.tensors)
    out: list[Result | None] = [None] * len(jobs)
    ctx = tmp.get_context("spawn")
    init = (theta_flat, theta_specs, theta0.meta, tau_flat, tau_specs, task_vectors.meta, images)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        futures = [pool.submit(_work, i, j) for i, j in enumerate(jobs)]
        for f in tqdm(as_completed(futures), total=len(futures), desc=desc, leave=False):
            i, res = f.result()
            # own copies: the received tensors live in shared memory that the worker may release
            out[i] = Result(res.lam.clone(), res.scores.clone(), res.seconds)
    return out  # type: ignore[return-value]
