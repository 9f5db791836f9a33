"""Personalization jobs and how they run: here, or across the workers of a Dask cluster.

A job is one method on one person × k × repeat: fit on the support set, then
score the query images. Each job depends only on its person (their support
images, their seed), so jobs are shared out without changing what any one of
them computes: every worker runs with one torch thread, so a run's numbers do
not depend on how many workers there are or which one picked a job up
(:mod:`aestimo.personalization.running.cluster` says how they get there).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from aestimo.personalization.registry import Context, Method, Query, State, Support


@dataclass
class Job:
    """One method on one person × k × repeat. Images are cache rows, so a job is small to send."""

    name: str  # the method's name in the summary
    method: Method
    support: Support
    query: Query

    def describe(self) -> str:
        """The job in words, for an error: which method, which person, k and repeat."""
        s = self.support
        return f"{self.name} on {s.source} person {s.rater_id} (k={s.k}, repeat {s.repeat})"


@dataclass
class Result:
    state: State
    scores: np.ndarray  # of the job's query images, on the template scale
    seconds: float  # time spent fitting
    score_seconds: float = 0.0  # time spent scoring the query


class JobFailed(RuntimeError):
    """A job raised: the message names the method, the person, k and the repeat."""


def _scored(method: Method, state: State, query: Query, ctx: Context, fit_seconds: float) -> Result:
    """The result of a fitted state: its scores of the query, and how long fitting and scoring took."""
    t0 = time.perf_counter()
    scores = method.predict(state, query, ctx)
    return Result(state, scores, fit_seconds, time.perf_counter() - t0)


def run_job(ctx: Context, job: Job) -> Result:
    """Fit the job's method on its support, then score its query; an error names the job."""
    try:
        t0 = time.perf_counter()
        state = job.method.fit(job.support, ctx)
        return _scored(job.method, state, job.query, ctx, time.perf_counter() - t0)
    except Exception as err:
        raise JobFailed(f"{job.describe()}: {type(err).__name__}: {err}") from err


def prepare(ctx: Context, jobs: Sequence[Job]) -> dict[str, float]:
    """Each method's :meth:`Method.prepare` on the supports and queries of its jobs, here, once per
    method object; returns the seconds each row name took (work another method already shared costs
    nothing). What a method shares out meanwhile (:meth:`Context.map`) goes to the workers the
    caller opened for ``ctx`` (:func:`aestimo.personalization.running.cluster.shared_out`), if any."""
    by_method: dict[int, list[Job]] = {}
    for j in jobs:
        by_method.setdefault(id(j.method), []).append(j)
    seconds: dict[str, float] = {}
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


def heavy_first(jobs: Sequence[Job]) -> list[int]:
    """The indices of the jobs of heavy methods (``Method.heavy``: those that run the network), the
    methods run on a sample (the slow ones) first, so that no long tail is left at the end."""
    heavy = [i for i, j in enumerate(jobs) if j.method.heavy]
    per_name = Counter(jobs[i].name for i in heavy)
    return sorted(heavy, key=lambda i: per_name[jobs[i].name])


def run_jobs(ctx: Context, jobs: Sequence[Job], workers: int = 1, desc: str = "personalize",
             on_result: Callable[[int, Result], None] | None = None) -> list[Result]:
    """Run every job; results in the order of ``jobs``.

    ``workers <= 1`` runs them here, in order. Otherwise the jobs of heavy
    methods go to the cluster's one-thread workers (the run's, or a
    ``LocalCluster`` of ``workers`` started for the call), one task per person
    and method, while the light ones (a few numbers per person) run here
    meanwhile: sending them would cost more than running them.
    ``on_result(i, result)`` is called here as each job's result is in (e.g.
    its metrics, while the workers still run). Call :func:`prepare` first.
    """
    from aestimo.personalization.running.cluster import shared_out

    done = on_result or (lambda i, res: None)
    heavy = heavy_first(jobs)
    out: list[Result | None] = [None] * len(jobs)
    if workers <= 1 or len(heavy) <= 1:
        for i, j in enumerate(tqdm(jobs, desc=desc, leave=False)):
            out[i] = run_job(ctx, j)
            done(i, out[i])
        return out  # type: ignore[return-value]
    with shared_out(ctx, workers) as cluster:
        pending = cluster.submit_jobs(jobs, heavy)
        light = sorted(set(range(len(jobs))) - set(heavy))
        with one_thread():  # beside busy workers, a second thread would only wait for a core
            for i in tqdm(light, desc=f"{desc} (light methods, here)", leave=False):
                out[i] = run_job(ctx, jobs[i])
                done(i, out[i])
            for i, res in pending.results(desc):
                out[i] = res
                done(i, res)
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
