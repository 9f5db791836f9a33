"""Personalization work across the workers of a Dask cluster.

One :class:`Cluster` serves a whole Kedro run (:class:`aestimo.hooks.ClusterHooks`
opens it before the first node that shares work out and closes it with the
run): with no scheduler configured it is a ``LocalCluster`` of
``personalize.workers`` processes with one thread each (the embedded default);
with ``personalize.scheduler`` set, a client of that scheduler. A node reaches
it as Dask's current client (:func:`client_for`); called outside a run (a
notebook, a test), :func:`client_for` starts a cluster of its own for the
duration.

While a node shares work out (:func:`shared_out`), the context's large read-only
inputs reach each worker once: θ0 and the task vectors scattered to every
worker (``broadcast=True``), the image store and θ0's feature table as the
paths of their files, which each worker maps (:mod:`aestimo.bundle`). What
``Method.prepare`` adds to ``ctx.shared`` is scattered the same way before the
next tasks that need it. Jobs travel as one task per person and method (their
k × repeats), and results come back as they complete. A worker lost mid-run
loses only its tasks in flight: the scheduler runs them again elsewhere, and
each result is taken once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dask
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from aestimo.bundle import mapped_origin, mapped_tensor
from aestimo.personalization.registry import Context
from aestimo.personalization.running.jobs import Job, Result, run_job

log = logging.getLogger(__name__)

#: the tag of the nodes that share work out over the run's cluster: the cluster starts before the first
#: of them (:class:`aestimo.hooks.ClusterHooks`), and ``aestimo.runner.DaskRunner`` runs them in the driver
SHARES_WORK = "shares_work"


class Cluster:
    """A Dask client and, where no scheduler is given, the ``LocalCluster`` it talks to.

    A context manager: what it started it closes on exit. ``workers`` processes with one thread
    each (spawned, never forked: the OpenMP runtime PyTorch ships is not fork-safe once used).
    The dashboard runs where bokeh is installed (``pip install -e ".[dashboard]"``), its address logged."""

    def __init__(self, workers: int, scheduler: str | None = None):
        self.workers, self.scheduler = workers, scheduler
        self.client: Any = None
        self._local: Any = None
        self._config: Any = None

    def __enter__(self) -> Cluster:
        from distributed import Client, LocalCluster

        dashboard = None
        self._quiet()
        if self.scheduler:
            self.client = Client(self.scheduler)
            log.info("dask: personalization runs on the cluster at %s (%d workers)", self.scheduler, len(self.client.scheduler_info()["workers"]))
        else:
            dashboard = ":0" if importlib.util.find_spec("bokeh") is not None else None
            # for the cluster's life, as its nannies read it again when they restart a lost worker
            self._config = dask.config.set(LOCAL_CONFIG | {"distributed.nanny.pre-spawn-environ": _worker_environ()})
            self._config.__enter__()
            self._local = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=dashboard, silence_logs=False)
            self.client = Client(self._local)
            log.info("dask: a local cluster of %d one-thread worker processes", self.workers)
        if self.scheduler or dashboard:
            log.info("dask dashboard: %s", self.client.dashboard_link)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _quiet(self) -> None:
        """Dask's own INFO lines (addresses, worker banners) kept out of the run's log, here and in the
        workers (they read the variable when they start), unless the user set it (e.g. to ``info``)."""
        if "DASK_LOGGING__DISTRIBUTED" not in os.environ:
            os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"
            logging.getLogger("distributed").setLevel(logging.WARNING)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._local is not None:
            self._local.close()
            self._local = None
        if self._config is not None:
            self._config.__exit__(None, None, None)
            self._config = None


#: Dask settings of the local cluster's workers: no statistical profiler (it samples the worker's stack
#: every 10 ms, taking the interpreter from the fit it samples) and no memory manager (nothing a task
#: holds can be spilled usefully; the workers' memory is the context, the same for every task)
LOCAL_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": False,
}


def _worker_environ() -> dict:
    """What a local worker process starts with: Dask's defaults (one OpenMP / MKL / OpenBLAS thread)
    less ``MALLOC_TRIM_THRESHOLD_``, with which glibc hands every freed block over 64 KiB back to the
    system: each of a fit's tensors then costs system calls (measured in the default chain: 42 % of a
    worker's CPU time in the kernel)."""
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def current_client():
    """Dask's current client (the run's cluster, or one the caller opened), or None."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


@contextmanager
def client_for(workers: int):
    """A client to share work out with: the current one if any (the run's, which may be a
    scheduler's), else a local :class:`Cluster` of ``workers`` started for the duration."""
    client = current_client()
    if client is not None:
        yield client
        return
    with Cluster(workers) as cluster:
        yield cluster.client


@dataclass
class WorkerContext:
    """What a worker needs to build the context: scattered once to every worker, which builds the
    :class:`Context` on first use and keeps it (with its merged scorer) for every task after."""

    theta0: Any
    task_vectors: Any
    images: Any  # CachedImages: pickles as its file's path
    experts: list[str]
    features: Any  # (file, key) of a mapped feature table, or the tensor itself
    artifacts: dict
    profiles: dict
    precision: str
    _ctx: Context | None = field(default=None, repr=False)

    @classmethod
    def of(cls, ctx: Context) -> WorkerContext:
        features = mapped_origin(ctx.features) if ctx.features is not None else None
        return cls(ctx.theta0, ctx.task_vectors, ctx.images, list(ctx.experts), features or ctx.features, dict(ctx.artifacts),
                   dict(ctx.profiles), ctx.precision)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_ctx": None}

    def context(self, shared: dict) -> Context:
        """The worker's context (built on first use: one torch thread, the feature table mapped),
        holding the latest ``shared``."""
        if self._ctx is None:
            torch.set_num_threads(1)
            threadpool_limits(1)
            features = mapped_tensor(*self.features) if isinstance(self.features, tuple) else self.features
            self._ctx = Context(self.images, self.theta0, self.task_vectors, self.experts, features,
                                artifacts=self.artifacts, profiles=self.profiles, precision=self.precision)
        self._ctx.shared = shared
        return self._ctx


def _call(fn: Callable, arg: Any, base: WorkerContext, shared: dict) -> Any:
    return fn(base.context(shared), arg)


def _run_batch(batch: list[tuple[int, Job]], base: WorkerContext, shared: dict) -> list[tuple[int, Result]]:
    ctx = base.context(shared)
    return [(i, run_job(ctx, job)) for i, job in batch]


class Pending:
    """Jobs submitted to the cluster, their results taken as they complete."""

    def __init__(self, client, futures: list, people: dict[Any, int], person_of: dict[Any, Any]):
        self.client, self.futures, self._people, self._person_of = client, futures, people, person_of

    def results(self, desc: str) -> Iterator[tuple[int, Result]]:
        """``(index, result)`` of every job, once each, as the tasks complete; people done / total on
        stderr. A task that raised stops here (the rest cancelled) with the job it names."""
        from distributed import as_completed

        left = dict(self._people)
        bar = tqdm(total=len(left), desc=f"{desc} (people)", unit="person", leave=False)
        try:
            for future in as_completed(self.futures):
                yield from future.result()
                person = self._person_of[future.key]
                left[person] -= 1
                if not left[person]:
                    bar.update(1)
        except BaseException:
            self.client.cancel(self.futures)
            raise
        finally:
            bar.close()


class SharedOut:
    """A context's work shared out over a client's workers: :meth:`Context.map` while open
    (:meth:`__call__`) and the jobs of :func:`aestimo.personalization.running.jobs.run_jobs`."""

    def __init__(self, client, ctx: Context):
        self.client, self.ctx = client, ctx
        self._base = self._scatter(WorkerContext.of(ctx))
        self._shared = None
        self._sent: dict[str, int] = {}

    def _scatter(self, obj):
        """``obj`` on every worker, once (in a list: Dask would scatter a dict's values one by one)."""
        return self.client.scatter([obj], broadcast=True, hash=False)[0]

    def _shared_future(self):
        """``ctx.shared`` on every worker: scattered again whenever an entry was added or replaced."""
        now = {k: id(v) for k, v in self.ctx.shared.items()}
        if self._shared is None or now != self._sent:
            self._shared = self._scatter(dict(self.ctx.shared))
            self._sent = now
        return self._shared

    def __call__(self, fn: Callable, args: Sequence) -> list:
        """``[fn(ctx, a) for a in args]`` on the workers, in order."""
        shared = self._shared_future()
        futures = [self.client.submit(_call, fn, a, self._base, shared, pure=False) for a in args]
        return self.client.gather(futures)

    def submit_jobs(self, jobs: Sequence[Job], order: Sequence[int]) -> Pending:
        """The jobs at ``order`` as one task per person and method, in that order."""
        batches: dict[tuple, list[tuple[int, Job]]] = {}
        for i in order:
            j = jobs[i]
            batches.setdefault((j.name, j.support.source, j.support.rater_id), []).append((i, j))
        shared = self._shared_future()
        futures, person_of, people = [], {}, {}
        for (_, source, rater), batch in batches.items():
            f = self.client.submit(_run_batch, batch, self._base, shared, pure=False)
            futures.append(f)
            person_of[f.key] = (source, rater)
            people[(source, rater)] = people.get((source, rater), 0) + 1
        return Pending(self.client, futures, people, person_of)

    def release(self) -> None:
        self.client.cancel([f for f in (self._base, self._shared) if f is not None])
        self._base = self._shared = None


@contextmanager
def shared_out(ctx: Context, workers: int | None = None):
    """Share ``ctx``'s work (:meth:`Context.map`, the jobs of ``run_jobs``) over the cluster's workers
    for the duration; yields the :class:`SharedOut`. With ``workers <= 1`` nothing leaves this
    process (yields None). Inside an open block, the block's own."""
    if isinstance(ctx.mapper, SharedOut):
        yield ctx.mapper
        return
    n = ctx.workers if workers is None else workers
    if n <= 1:
        yield None
        return
    with client_for(n) as client:
        out = SharedOut(client, ctx)
        ctx.mapper = out
        try:
            yield out
        finally:
            ctx.mapper = None
            out.release()

