"""Run personalization jobs, here or across worker processes.

A job is one method on one person × k × repeat: fit on the support set, then
score the query images. Each job depends only on its person (their support
images, their seed), so jobs are split across processes without changing what
any one of them computes. Measured on 2 CPU cores
(bench/personalize_workers.py): two one-thread workers run the exact method
1.48x faster than one process with one thread and 1.05-1.09x faster than one
process with two intra-op threads, with λ bit-identical to the one-thread run.

Workers are spawned (never forked: the OpenMP runtime PyTorch ships is not
fork-safe once used) and build their own :class:`Context` from θ0 and τ,
which travel once, packed into one shared-memory tensor per dtype; the image
store and the feature table travel as their files' paths and each worker maps
them (:mod:`aestimo.bundle`), so no process holds every pixel. A node
opens one pool (:func:`worker_pool`) for all it shares out: a spawn costs
each worker seconds of imports and context. Every
worker runs with one intra-op thread, so a run's numbers do not depend on how
many workers there are or which one picked it up.

Within a Kedro run the workers stay up from node to node (:func:`keep_warm`,
switched on by the project's hooks): the next node that opens a pool of as
many workers sends them its own context instead of spawning new ones, which
saves each node after the first the workers' imports (~4 s of each worker).
"""

from __future__ import annotations

import logging
import math
import pickle
from collections import Counter
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as tmp
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from aestimo.bundle import TensorBundle, mapped_origin, mapped_tensor
from aestimo.personalization.registry import Context, Method, Query, State, Support

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One method on one person × k × repeat. Images are cache rows, so a job is small to send."""

    name: str  # the method's name in the summary
    method: Method
    support: Support
    query: Query


@dataclass
class Result:
    state: State
    scores: np.ndarray  # of the job's query images, on the template scale
    seconds: float  # time spent fitting
    score_seconds: float = 0.0  # time spent scoring the query


def _scored(method: Method, state: State, query: Query, ctx: Context, fit_seconds: float) -> Result:
    """The result of a fitted state: its scores of the query, and how long fitting and scoring took."""
    t0 = time.perf_counter()
    scores = method.predict(state, query, ctx)
    return Result(state, scores, fit_seconds, time.perf_counter() - t0)


def run_job(ctx: Context, job: Job) -> Result:
    t0 = time.perf_counter()
    state = job.method.fit(job.support, ctx)
    return _scored(job.method, state, job.query, ctx, time.perf_counter() - t0)


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


_CTX: Context | None = None
_BARRIER = None  # the pool's barrier: a broadcast reaches every worker once


def _set_context(theta_flat, theta_specs, theta_meta, tau_flat, tau_specs, tau_meta, images, experts, features,
                 shared, artifacts, profiles, precision="fp32") -> None:
    global _CTX
    theta0 = TensorBundle(unpack(theta_flat, theta_specs), theta_meta)
    tau = TensorBundle(unpack(tau_flat, tau_specs), tau_meta)
    if isinstance(features, tuple):  # a feature table mapped from its file: the worker maps it too
        features = mapped_tensor(*features)
    _CTX = Context(images, theta0, tau, experts, features, shared, artifacts=artifacts, profiles=profiles, precision=precision)


def _init_worker(barrier, *context_args) -> None:
    global _BARRIER
    torch.set_num_threads(1)
    threadpool_limits(1)
    _BARRIER = barrier
    _set_context(*context_args)


def _init_args(ctx: Context) -> tuple:
    theta_flat, theta_specs = pack(ctx.theta0.tensors)
    tau_flat, tau_specs = pack(ctx.task_vectors.tensors)
    # the image store travels as its file (CachedImages pickles so), the feature table too: mapped, never copied
    features = mapped_origin(ctx.features) if ctx.features is not None else None
    return (theta_flat, theta_specs, ctx.theta0.meta, tau_flat, tau_specs, ctx.task_vectors.meta, ctx.images, ctx.experts,
            features or ctx.features, dict(ctx.shared), ctx.artifacts, ctx.profiles, ctx.precision)


def _call(fn, arg):
    assert _CTX is not None
    return fn(_CTX, arg)


#: how long a broadcast waits for every worker to take its part before it gives up (a worker died)
BROADCAST_TIMEOUT_S = 600.0


def _receive(items: dict[str, Any]) -> None:
    """One worker's part of a broadcast: take the items into its context, then wait until every
    worker has taken its own part (so that no worker takes two)."""
    assert _CTX is not None and _BARRIER is not None
    _CTX.shared.update(items)
    _BARRIER.wait(BROADCAST_TIMEOUT_S)


def _rebind(context_args: tuple) -> None:
    """One worker's part of a rebind: drop its context for another node's, then wait for the others."""
    assert _BARRIER is not None
    _set_context(*context_args)
    _BARRIER.wait(BROADCAST_TIMEOUT_S)


class WorkerPool:
    """Spawned one-thread workers that hold the context, for everything a node shares out.

    Spawning costs each worker seconds (importing torch and the models, receiving θ0, τ and
    the images), so a node opens one pool (:func:`worker_pool`) for instant's feature pass
    and for the jobs after it. What ``Method.prepare`` puts in ``ctx.shared`` meanwhile
    reaches every worker before their next work (:meth:`executor`).
    """

    def __init__(self, ctx: Context, workers: int):
        self.ctx, self.workers = ctx, workers
        self._executor: ProcessPoolExecutor | None = None  # spawned on first use
        self._sent: dict[str, int] = {}
        self._pending: list = []

    def _broadcast(self, items: dict[str, Any]) -> list:
        assert self._executor is not None
        return [self._executor.submit(_receive, items) for _ in range(self.workers)]

    def _spawn(self) -> ProcessPoolExecutor:
        spawn = tmp.get_context("spawn")
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=spawn, initializer=_init_worker,
            initargs=(spawn.Barrier(self.workers), *_init_args(self.ctx)),
        )
        self._sent = {k: id(v) for k, v in self.ctx.shared.items()}
        # one part per worker, submitted while none is idle: every worker is spawned now
        self._pending = self._broadcast({})
        return self._executor

    def rebind(self, ctx: Context) -> None:
        """Serve ``ctx`` from now on: every worker drops the context it holds for this one's (θ0, τ,
        the images, what ``ctx.shared`` holds now ...), in place of a new spawn."""
        assert self._executor is not None
        for f in self._pending:
            f.result()  # the previous node's broadcasts are taken before the context goes
        args = _init_args(ctx)
        self.ctx, self._pending = ctx, [self._executor.submit(_rebind, args) for _ in range(self.workers)]
        self._sent = {k: id(v) for k, v in ctx.shared.items()}

    @property
    def alive(self) -> bool:
        return self._executor is not None and not getattr(self._executor, "_broken", False)

    def executor(self) -> ProcessPoolExecutor:
        """The pool (spawned on first use), with what ``ctx.shared`` holds now on its way to every
        worker: tasks leave the queue in order, so work submitted from here on finds it there."""
        executor = self._executor or self._spawn()
        for f in [f for f in self._pending if f.done()]:
            f.result()  # a worker that could not take its part stops the run here
            self._pending.remove(f)
        new = {k: v for k, v in self.ctx.shared.items() if self._sent.get(k) != id(v)}
        if new:
            self._pending += self._broadcast(new)
            self._sent.update({k: id(v) for k, v in new.items()})
        return executor

    def __call__(self, fn, args: Sequence) -> list:
        """``[fn(ctx, a) for a in args]`` in the workers (the context's :meth:`Context.map` while open)."""
        return list(self.executor().map(_call, [fn] * len(args), args))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)


#: whether pools outlive the ``worker_pool`` block that opened them (:func:`keep_warm`)
_KEEP_WARM = False
#: the pool kept up for the next block, while ``_KEEP_WARM``
_WARM: WorkerPool | None = None


def keep_warm(on: bool) -> None:
    """Keep the workers up between ``worker_pool`` blocks (a Kedro run's nodes), or stop doing so and
    close the pool kept. A block that wants as many workers as the kept pool has takes it over,
    rebound to its own context; one that wants another number closes it and spawns its own."""
    global _KEEP_WARM, _WARM
    _KEEP_WARM = on
    if not on and _WARM is not None:
        pool, _WARM = _WARM, None
        pool.close()


def _take_warm(ctx: Context, workers: int) -> WorkerPool:
    """The kept pool rebound to ``ctx`` when it has ``workers`` workers and is alive; else a new pool
    (the kept one closed)."""
    global _WARM
    pool, _WARM = _WARM, None
    if pool is not None and pool.workers == workers and pool.alive:
        try:
            pool.rebind(ctx)
        except Exception as err:  # a worker that could not take the previous node's last broadcast
            log.warning("worker pool: the kept workers cannot take this node's context (%s); spawning new ones", err)
        else:
            log.info("worker pool: the %d workers kept from the previous node take this one's context (no new spawn)", workers)
            return pool
    if pool is not None:
        pool.close()
    return WorkerPool(ctx, workers)


@contextmanager
def worker_pool(ctx: Context, workers: int | None = None):
    """One pool of ``workers`` (default ``ctx.workers``) processes for the duration: the work this
    context shares out meanwhile (:meth:`Context.map`, :func:`run_jobs`) goes there, spawned when
    first needed (or taken over from the previous block, see :func:`keep_warm`). Nothing is spawned
    for one worker, or when a pool is open already."""
    global _WARM
    n = ctx.workers if workers is None else workers
    if n <= 1 or isinstance(ctx.mapper, WorkerPool):
        yield ctx.mapper
        return
    pool = _take_warm(ctx, n) if _KEEP_WARM else WorkerPool(ctx, n)
    ctx.mapper = pool
    ok = False
    try:
        yield pool
        ok = True
    finally:
        ctx.mapper = None
        if ok and _KEEP_WARM and pool.alive:
            _WARM = pool  # for the next block (a failed block's pool may hold half a broadcast: closed)
        else:
            pool.close()


def _pack(obj) -> bytes:
    """A job or a result as a plain pickle, its small tensors inline. Through the pool's queues torch
    would move each tensor to shared memory and hand its file descriptor over a socket with a
    handshake: more work than copying a few kilobytes (the big shared data, θ0, τ, the images, the
    features, travel once by shared memory instead). Only this module's own processes unpickle it."""
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _work(i: int, job: bytes) -> tuple[int, bytes]:
    assert _CTX is not None
    return i, _pack(run_job(_CTX, pickle.loads(job)))


def prepare(ctx: Context, jobs: Sequence[Job]) -> dict[str, float]:
    """Each method's :meth:`Method.prepare` on the supports and queries of its jobs, here, once per
    method object; returns the seconds each row name took (work another method already shared costs nothing)."""
    by_method: dict[int, list[Job]] = {}
    for j in jobs:
        by_method.setdefault(id(j.method), []).append(j)
    seconds: dict[str, float] = {}
    with worker_pool(ctx):  # what a method shares out (Context.map) goes to ctx.workers processes
        for js in by_method.values():
            t0 = time.perf_counter()
            js[0].method.prepare([j.support for j in js], [j.query for j in js], ctx)
            seconds[js[0].name] = seconds.get(js[0].name, 0.0) + time.perf_counter() - t0
    return seconds


@contextmanager
def one_thread():
    """torch and the BLAS libraries on one thread for the duration."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def run_jobs(ctx: Context, jobs: Sequence[Job], workers: int = 1, desc: str = "personalize",
             on_result: Callable[[int, Result], None] | None = None) -> list[Result]:
    """Run every job; results in the order of ``jobs``.

    ``workers <= 1`` runs them here, in order. Otherwise a pool of spawned
    one-thread workers shares out the jobs of heavy methods (``Method.heavy``:
    those that run the network), while the light ones (a few numbers per
    person) run here meanwhile: sending them to a worker would cost more than
    running them. ``on_result(i, result)`` is called here as each job's result
    is in (e.g. its metrics, while the workers still run). Call :func:`prepare` first.
    """
    done = on_result or (lambda i, res: None)
    heavy = [i for i, j in enumerate(jobs) if j.method.heavy]
    per_name = Counter(jobs[i].name for i in heavy)
    heavy.sort(key=lambda i: per_name[jobs[i].name])  # methods run on a sample (the slow ones) first: no long tail
    out: list[Result | None] = [None] * len(jobs)
    if workers <= 1 or len(heavy) <= 1:
        for i, j in enumerate(tqdm(jobs, desc=desc, leave=False)):
            out[i] = run_job(ctx, j)
            done(i, out[i])
        return out  # type: ignore[return-value]
    with worker_pool(ctx, min(workers, len(heavy))) as pool:
        executor = pool.executor()
        futures = [executor.submit(_work, i, _pack(jobs[i])) for i in heavy]
        light = set(range(len(jobs))) - set(heavy)
        with one_thread():  # beside busy workers, a second thread would only wait for a core
            for i in tqdm(sorted(light), desc=f"{desc} (light methods, here)", leave=False):
                out[i] = run_job(ctx, jobs[i])
                done(i, out[i])
            for f in tqdm(as_completed(futures), total=len(futures), desc=desc, leave=False):
                i, res = f.result()
                out[i] = pickle.loads(res)
                done(i, out[i])
    return out  # type: ignore[return-value]


def run_batched(ctx: Context, jobs: Sequence[Job]) -> list[Result]:
    """Batched mode, here: the jobs of one method × source × k fitted together (``Method.fit_many``)."""
    results: list[Result | None] = [None] * len(jobs)
    groups: dict[tuple, list[int]] = {}
    for i, j in enumerate(jobs):
        groups.setdefault((j.name, j.support.source, j.support.k), []).append(i)
    for idx in tqdm(groups.values(), desc="personalize (batched)", leave=False):
        method = jobs[idx[0]].method
        t0 = time.perf_counter()
        states = method.fit_many([jobs[i].support for i in idx], ctx)
        per_run = (time.perf_counter() - t0) / len(idx)
        for i, state in zip(idx, states):
            results[i] = _scored(method, state, jobs[i].query, ctx, per_run)
    return results  # type: ignore[return-value]
