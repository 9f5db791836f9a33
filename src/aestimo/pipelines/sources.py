"""The list of rating sources that the per-source pipelines are built for.

A run decides it: ``hooks.ParameterValidationHooks`` reads ``experts.sources`` from the run's own
parameters (``conf/base``, the ``--env`` environment and ``--params``) when the Kedro context is
created, before Kedro first reads a pipeline, hands it to :func:`use_run_sources` and has the
registered pipelines built again when they were built for another list. So
``kedro run --env X --params experts.sources=[ava]`` trains exactly the experts it names.

Without a run (``kedro registry list``, ``kedro viz`` without hooks, a notebook that builds a
pipeline) :func:`configured_sources` falls back to plain YAML: ``experts.sources`` in
``conf/base/parameters*.yml``, overridden by the environment named in ``KEDRO_ENV`` when set, and the
embedded world's sources when none is configured. Plain YAML is read here on purpose: a second
OmegaConfigLoader in the process would capture Kedro's ``globals`` resolver.
"""

from __future__ import annotations

import os
from functools import partial, update_wrapper
from pathlib import Path

import yaml

from aestimo.data.world.latents import SOURCES as WORLD_SOURCES

_run_sources: list[str] | None = None  # the current run's experts.sources (None: no run, read the YAML)
_built_for: tuple[str, ...] | None = None  # the list the registered pipelines were last built for


def _sources_in(folder: Path) -> list[str] | None:
    found = None
    for f in sorted(folder.glob("parameters*.yml")):
        data = yaml.safe_load(f.read_text()) or {}
        sources = (data.get("experts") or {}).get("sources")
        if sources is not None:
            found = list(sources)
    return found


def yaml_sources(conf_source: str | Path | None = None) -> list[str]:
    """``experts.sources`` from the YAML of ``conf/base`` and ``KEDRO_ENV``'s folder (no run)."""
    conf = Path(conf_source) if conf_source else Path.cwd() / "conf"
    sources = _sources_in(conf / "base") if (conf / "base").is_dir() else None
    env = os.environ.get("KEDRO_ENV")
    if env and (conf / env).is_dir():
        sources = _sources_in(conf / env) or sources
    return sources or list(WORLD_SOURCES)


def configured_sources(conf_source: str | Path | None = None) -> list[str]:
    """The sources to build per-source pipelines for: the current run's ``experts.sources`` when a
    run has set them (:func:`use_run_sources`), else :func:`yaml_sources`."""
    if _run_sources is not None and conf_source is None:
        return list(_run_sources)
    return yaml_sources(conf_source)


def use_run_sources(sources: list[str] | None) -> bool:
    """Make ``sources`` (a run's ``experts.sources``; None: back to the YAML) the list pipelines are
    built for. True when pipelines already built were built for another list, i.e. Kedro's
    registered pipelines must be built again (:func:`rebuild_registered_pipelines`)."""
    global _run_sources
    _run_sources = list(sources) if sources is not None else None
    return _built_for is not None and _built_for != tuple(configured_sources())


def built_for(sources: list[str]) -> None:
    """Recorded by ``register_pipelines``: the sources its per-source pipelines were built for."""
    global _built_for
    _built_for = tuple(sources)


def rebuild_registered_pipelines() -> None:
    """Have ``kedro.framework.project.pipelines`` call ``register_pipelines`` again at its next read
    (it caches the first result), keeping the pipelines a run asked for."""
    from kedro.framework.project import pipelines

    module = getattr(pipelines, "_pipelines_module", None)
    if module is None:  # not configured yet: the first read will build them
        return
    requested = getattr(pipelines, "_requested_pipelines", None)
    pipelines.configure(module)  # Kedro's public way to drop the cached registry
    pipelines.set_requested(requested)


def bind(func, first):
    """``func`` with its first argument fixed (a source, a model kind), keeping its name and
    docstring so that kedro-viz shows the real node function."""
    return update_wrapper(partial(func, first), func)
