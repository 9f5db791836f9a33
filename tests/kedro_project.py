"""The temporary Kedro project every pipeline test runs in: the repository's configuration in a
fresh folder (the package itself is installed), entered the way `kedro run` sees it."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


def new_project(tmp: Path) -> Path:
    """A project folder with the repository's configuration (conf/local left out, as on a fresh clone)."""
    shutil.copytree(ROOT / "conf", tmp / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp / "conf" / "local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, tmp / name)
    (tmp / "src").mkdir()  # Kedro only wants the folder
    return tmp


@contextmanager
def inside(tmp: Path):
    """Parameters and catalog name paths relative to the project root, as `kedro run` sees them."""
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        bootstrap_project(tmp)
        yield tmp
    finally:
        os.chdir(cwd)


def run(tmp: Path, pipeline: str, env: str = "smoke", runtime_params: dict | None = None) -> None:
    with KedroSession.create(project_path=tmp, env=env, runtime_params=runtime_params) as session:
        session.run(pipeline_name=pipeline)


def catalog(tmp: Path, env: str = "smoke"):
    with KedroSession.create(project_path=tmp, env=env) as session:
        return session.load_context().catalog
