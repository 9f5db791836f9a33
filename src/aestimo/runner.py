"""A Kedro runner that runs independent nodes side by side as Dask tasks.

``kedro run --runner aestimo.runner.DaskRunner`` is the one setting: the
per-source expert sub-pipelines (and any other nodes whose inputs are ready)
then run as tasks on the same cluster that personalizes people — a
``LocalCluster`` of ``personalize.workers`` one-thread processes, or the
scheduler at ``personalize.scheduler`` (on a GPU machine, a ``dask-cuda``
cluster gives each worker one GPU; point ``personalize.scheduler`` at it).

Why a runner, not the client inside the experts' nodes: the experts are
already one namespaced sub-pipeline per source, so a runner parallelizes them
(and ingest's adapters, and the field models) without changing a node, and the
sequential run stays the default. Each task receives the node and the catalog
by pickle, loads its inputs from the catalog's files and saves its outputs to
them, so every output a node hands on must be a persisted catalog entry (the
run stops at once, naming any that is not: an in-memory dataset saved in a
worker would be lost). Workers are spawned processes, never forked (torch's
OpenMP runtime and CUDA are not fork-safe), and each node sets its own torch
threads from its parameters, as it does in a sequential run, so the experts'
weights equal the sequential run's.

Nodes that share people out themselves (tagged ``SHARES_WORK``: choosing the
settings, personalizing people, self-training people) run here, in the driver, and send their people to the same
cluster (:mod:`aestimo.personalization.running.cluster`), while other ready
nodes go on in the workers. Node hooks (the per-node timing) run only for the
nodes run here.
"""

from __future__ import annotations

from typing import Any

from distributed import wait

from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import MemoryDataset
from kedro.runner import AbstractRunner
from kedro.runner.task import Task

from aestimo.personalization.running.cluster import SHARES_WORK


def _run_node(node, catalog, run_id):
    """A node in a Dask worker: inputs loaded from the catalog's files, outputs saved to them."""
    Task(node=node, catalog=catalog, is_async=False, hook_manager=_create_hook_manager(), run_id=run_id).execute()
    return node


class DaskRunner(AbstractRunner):
    """Nodes as Dask tasks, as soon as the nodes they depend on are done (see the module's docstring)."""

    def __init__(self, is_async: bool = False, workers: int | None = None, scheduler: str | None = None):
        super().__init__(is_async=is_async)
        self.workers, self.scheduler = workers, scheduler

    def _get_executor(self, max_workers: int):  # the cluster's client is the executor (see _run)
        return None

    def _cluster_settings(self, catalog) -> tuple[int, str | None]:
        from aestimo import config

        p = config.parse("personalize", catalog.load("params:personalize")) if "params:personalize" in catalog else None
        workers = self.workers if self.workers is not None else (max(p.workers, 1) if p else 2)
        scheduler = self.scheduler if self.scheduler is not None else (p.scheduler if p else None)
        return workers, scheduler

    @staticmethod
    def _check_outputs(pipeline, catalog) -> None:
        """Every dataset a node hands on must live in files every worker can read."""
        handed_on = {d for n in pipeline.nodes for d in n.outputs} & {d for n in pipeline.nodes for d in n.inputs}
        in_memory = sorted(d for d in handed_on if isinstance(catalog.get(d, fallback_to_runtime_pattern=True), MemoryDataset))
        if in_memory:
            raise ValueError(f"DaskRunner: these datasets are handed from node to node in memory, which a Dask worker cannot "
                             f"share: {', '.join(in_memory)}; give each a file-backed entry in the catalog, or run without --runner")

    def _run(self, pipeline, catalog, hook_manager=None, run_id: str | None = None) -> None:
        from aestimo.personalization.running.cluster import Cluster, current_client

        self._check_outputs(pipeline, catalog)
        deps = pipeline.node_dependencies
        todo, done = set(deps), set()
        here = {n for n in pipeline.nodes if SHARES_WORK in n.tags}
        client, own = current_client(), None
        if client is None:
            own = Cluster(*self._cluster_settings(catalog)).__enter__()
            client = own.client
        futures: dict[Any, Any] = {}
        try:
            while todo or futures:
                ready = sorted((n for n in todo if deps[n] <= done), key=lambda n: n.name)
                todo -= set(ready)
                for node in ready:
                    if node not in here:
                        futures[client.submit(_run_node, node, catalog, run_id, pure=False, key=f"node-{node.name}")] = node
                inline = [n for n in ready if n in here]
                for node in inline:  # shares its people out over the same cluster meanwhile
                    Task(node=node, catalog=catalog, is_async=self._is_async, hook_manager=hook_manager, run_id=run_id).execute()
                    done.add(node)
                    self._logger.info("Completed node: %s (%d of %d)", node.name, len(done), len(deps))
                if inline:
                    continue  # nodes after them may be ready now
                if not futures:
                    raise RuntimeError(f"DaskRunner: {len(todo)} nodes cannot run (unmet dependencies): "
                                       f"{', '.join(sorted(n.name for n in todo))}")
                for future in wait(list(futures), return_when="FIRST_COMPLETED").done:
                    node = futures.pop(future)
                    future.result()  # a node that raised stops the run here, with its error
                    done.add(node)
                    self._logger.info("Completed node: %s (%d of %d)", node.name, len(done), len(deps))
        except BaseException:
            client.cancel(list(futures))
            raise
        finally:
            if own is not None:
                own.close()
