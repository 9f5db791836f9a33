"""Project hooks: keep a run's stderr quiet (Kedro's own INFO lines only when asked for, progress
bars only on a terminal); validate every parameter block, and the raw data's folders, before any
node runs; build the per-source pipelines for the run's own ``experts.sources``; time every node
(wall and CPU) and say per stage where a run's time went.

A bad parameter or a missing data folder stops the run at once with a one-line message that
names the setting to fix (no traceback): the hook raises :class:`InvalidSettings`, a SystemExit.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

log = logging.getLogger(__name__)


class InvalidSettings(SystemExit):
    """The run's parameters cannot work; the message says which setting and what to do."""


def missing_roots(ingest, project_path: Path, env: str | None) -> list[str]:
    """A message per enabled source whose data lives in a folder of the user's (not the synthetic
    world) when that folder is not set or does not exist."""
    where = f"conf/{env or 'base'}/parameters_ingest.yml"
    out = []
    for kind, src in ingest.active_sources.items():
        if src.synthetic:
            continue
        root = Path(src.root) if src.root else None
        if root is None:
            out.append(f"parameter 'ingest.sources.{kind}.root' is empty: set it to the folder of the downloaded data set in {where}")
        elif not (root if root.is_absolute() else project_path / root).is_dir():
            out.append(f"parameter 'ingest.sources.{kind}.root': folder '{src.root}' does not exist; point it at the downloaded data set in {where}")
    return out


def run_expert_sources(context) -> list[str] | None:
    """``experts.sources`` of the run (base, its environment, its ``--params``), read from the
    config loader without touching Kedro's pipelines; None when unset or not a list of names."""
    try:
        raw = context.config_loader["parameters"]
    except Exception:  # noqa: BLE001 - a broken configuration is reported by the validation below
        return None
    sources = (raw.get("experts") or {}).get("sources") if isinstance(raw.get("experts"), dict) else None
    if isinstance(sources, (list, tuple)) and sources and all(isinstance(s, str) for s in sources):
        return list(sources)
    return None


def source_problems(ingest, experts) -> tuple[list[str], str | None]:
    """Experts that ingest does not read (errors, one line each, naming the setting), and one log line
    for the sources ingest reads that train no expert."""
    problems = []
    for s in experts.sources:
        if s not in ingest.sources:
            problems.append(f"parameter 'experts.sources': '{s}' is not a source of 'ingest.sources' ({', '.join(ingest.sources)}); "
                            f"remove it from experts.sources or configure it under ingest.sources")
        elif not ingest.sources[s].enabled:
            problems.append(f"parameter 'experts.sources' names '{s}', but 'ingest.sources.{s}.enabled' is false: "
                            f"remove '{s}' from experts.sources, or enable it and set its root")
    extra = [s for s in ingest.active_sources if s not in experts.sources]
    note = None
    if extra:
        note = (f"ingest sources without an expert (enabled under ingest.sources, not in experts.sources): {', '.join(extra)}; "
                f"their images are read and their held-out people personalized with the other sources' experts "
                f"(ingest.sources.<name>.enabled: false leaves one out)")
    return problems, note


class LoggingHooks:
    """Before any other hook: progress bars off when stderr is not a terminal (before the pipelines,
    which import tqdm, are built), and Kedro's own INFO lines shown when ``AESTIMO_VERBOSE`` is set
    (``conf/logging.yml`` keeps them out otherwise), at each session's start."""

    def __init__(self) -> None:
        self._quiet_level: int | None = None  # the kedro logger's level as configured (conf/logging.yml)

    @hook_impl(tryfirst=True)
    def after_context_created(self) -> None:
        from aestimo.logs import hide_progress_bars_off_a_terminal, verbose_from_env

        hide_progress_bars_off_a_terminal()
        kedro = logging.getLogger("kedro")
        if self._quiet_level is None:
            self._quiet_level = kedro.level
        kedro.setLevel(logging.INFO if verbose_from_env() else self._quiet_level)


class ParameterValidationHooks:
    def __init__(self) -> None:
        self._note: str | None = None  # a line for the run's log, not for every session (aestimo score)

    @hook_impl
    def before_pipeline_run(self) -> None:
        if self._note:
            log.info(self._note)

    @hook_impl
    def after_context_created(self, context) -> None:
        self._note = None
        from aestimo import config
        from aestimo.pipelines.sources import rebuild_registered_pipelines, use_run_sources

        # before anything reads Kedro's pipelines (context.params does): the per-source pipelines
        # follow this run's experts.sources, not the YAML the registry would read on its own
        if use_run_sources(run_expert_sources(context)):
            rebuild_registered_pipelines()
        params = context.params
        problems = []
        parsed_sections = {}
        for section in config.SECTIONS:
            if section in params:
                try:
                    parsed = parsed_sections[section] = config.parse(section, params[section])
                except ValueError as err:
                    problems.extend(str(err).splitlines()[1:] or [str(err)])
                    continue
                if section == "ingest":
                    problems.extend(missing_roots(parsed, Path(context.project_path), context.env))
        if "ingest" in parsed_sections and "experts" in parsed_sections:
            bad, note = source_problems(parsed_sections["ingest"], parsed_sections["experts"])
            problems.extend(bad)
            if note and not problems:
                self._note = note
        if problems:
            raise InvalidSettings("error: invalid settings:\n  " + "\n  ".join(p.strip() for p in problems))


def _live_children_cpu() -> float:
    """CPU seconds so far of this process's children that have not been reaped (Linux's /proc; 0
    elsewhere): the run's Dask workers, which outlive each node."""
    pids: set[int] = set()
    for listing in Path("/proc/self/task").glob("*/children"):
        try:
            pids.update(int(p) for p in listing.read_text().split())
        except OSError:
            continue
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # reaped meanwhile: RUSAGE_CHILDREN holds it now
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _children_cpu() -> float:
    """CPU seconds of this process's children, finished (the pools a node joined) or still running
    (the run's Dask workers): the difference over a node is what its workers used."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + _live_children_cpu()


def stage_of_nodes(stages: dict[str, Pipeline]) -> dict[str, str]:
    """Each node's stage: the first stage pipeline that holds it."""
    out: dict[str, str] = {}
    for stage, pipe in stages.items():
        for node in pipe.nodes:
            out.setdefault(node.name, stage)
    return out


class NodeTimingHooks:
    """Wall and CPU seconds of every node (worker processes included once they are joined), logged as
    each node ends, and per stage with the slowest nodes when the run ends: where a run's time went."""

    STAGES = ("ingest", "experts", "task_vectors", "field_models", "personalization", "self_training", "reporting")

    def __init__(self) -> None:
        self._start: dict[str, tuple[float, float]] = {}
        self.seconds: dict[str, tuple[float, float]] = {}  # node name -> (wall, CPU)
        self._nodes = 0  # in the run's pipeline: the run's progress, Kedro's runner lines being quiet

    @hook_impl
    def before_pipeline_run(self, pipeline=None) -> None:
        self._start.clear()
        self.seconds.clear()
        self._nodes = len(pipeline.nodes) if pipeline is not None else 0
        if self._nodes:
            log.info("running %d nodes", self._nodes)

    @hook_impl
    def before_node_run(self, node) -> None:
        self._start[node.name] = (time.perf_counter(), time.process_time() + _children_cpu())

    @hook_impl
    def after_node_run(self, node) -> None:
        wall0, cpu0 = self._start.pop(node.name, (None, None))
        if wall0 is None:
            return
        wall, cpu = time.perf_counter() - wall0, time.process_time() + _children_cpu() - cpu0
        self.seconds[node.name] = (wall, cpu)
        if wall >= 1.0:
            done = f"; {len(self.seconds)} of {self._nodes} nodes done" if self._nodes else ""
            log.info("node %s took %.1f s (CPU %.1f s)%s", node.name, wall, cpu, done)

    @hook_impl
    def on_node_error(self, node) -> None:
        self._start.pop(node.name, None)  # a failed node has no time to report

    @hook_impl
    def after_pipeline_run(self) -> None:
        if not self.seconds:
            return
        from kedro.framework.project import pipelines

        stage = stage_of_nodes({s: pipelines[s] for s in self.STAGES if s in pipelines})
        for line in timing_summary(self.seconds, stage):
            log.info(line)


class ClusterHooks:
    """One Dask cluster for a whole run (:class:`aestimo.personalization.running.cluster.Cluster`),
    held here: opened before the first node that shares work out (tagged ``SHARES_WORK``), when
    ``personalize.workers`` is above 1 on the CPU or ``personalize.scheduler`` is set, and closed
    when the run ends or fails. Nodes reach it as Dask's current client."""

    def __init__(self) -> None:
        self.cluster = None

    @hook_impl
    def before_node_run(self, node, catalog) -> None:
        from aestimo import config
        from aestimo.personalization.running.cluster import SHARES_WORK, Cluster, current_client

        if self.cluster is not None or SHARES_WORK not in node.tags:
            return
        if current_client() is not None:  # the runner's (aestimo.runner.DaskRunner) or one the caller opened
            return
        p = config.parse("personalize", catalog.load("params:personalize"))
        if p.scheduler or (p.workers > 1 and p.torch_device.type == "cpu"):
            self.cluster = Cluster(p.workers, p.scheduler).__enter__()

    @hook_impl
    def after_pipeline_run(self) -> None:
        self.close()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self.close()

    def close(self) -> None:
        if self.cluster is not None:
            cluster, self.cluster = self.cluster, None
            cluster.close()


def timing_summary(seconds: dict[str, tuple[float, float]], stage: dict[str, str], slowest: int = 8) -> list[str]:
    """Log lines: wall / CPU seconds per stage (in run order), then the slowest nodes."""
    per: dict[str, list[float]] = {}
    for name, (wall, cpu) in seconds.items():
        acc = per.setdefault(stage.get(name, "other"), [0.0, 0.0])
        acc[0] += wall
        acc[1] += cpu
    total = sum(w for w, _ in seconds.values())
    lines = [f"run time by stage (wall / CPU seconds; {total:.0f} s in all):"]
    lines += [f"  {s:<16} {w:7.1f} / {c:7.1f}" for s, (w, c) in per.items()]
    lines.append("slowest nodes:")
    top = sorted(seconds.items(), key=lambda kv: -kv[1][0])[:slowest]
    lines += [f"  {n}: {w:.1f} / {c:.1f}" for n, (w, c) in top]  # unpadded: a log line of its own, unwrapped
    return lines
