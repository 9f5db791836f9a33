"""The configured list of rating sources, read when pipelines are registered.

Kedro builds pipelines before it reads the run's parameters, so the per-source
namespaces come from ``experts.sources`` in ``conf/base/parameters*.yml`` (the embedded
world's sources when none is configured)
(overridden by the environment named in ``KEDRO_ENV``, when set). Plain YAML
is read here on purpose: a second OmegaConfigLoader in the process would
capture Kedro's ``globals`` resolver.
"""

from __future__ import annotations

import os
from functools import partial, update_wrapper
from pathlib import Path

import yaml

from aestimo.data.world.latents import SOURCES as WORLD_SOURCES


def _sources_in(folder: Path) -> list[str] | None:
    found = None
    for f in sorted(folder.glob("parameters*.yml")):
        data = yaml.safe_load(f.read_text()) or {}
        sources = (data.get("experts") or {}).get("sources")
        if sources is not None:
            found = list(sources)
    return found


def configured_sources(conf_source: str | Path | None = None) -> list[str]:
    conf = Path(conf_source) if conf_source else Path.cwd() / "conf"
    sources = _sources_in(conf / "base") if (conf / "base").is_dir() else None
    env = os.environ.get("KEDRO_ENV")
    if env and (conf / env).is_dir():
        sources = _sources_in(conf / env) or sources
    return sources or list(WORLD_SOURCES)


def bind(func, first):
    """``func`` with its first argument fixed (a source, a model kind), keeping its name and
    docstring so that kedro-viz shows the real node function."""
    return update_wrapper(partial(func, first), func)
