"""docs/add-a-method.md, followed to the letter: its module and its parameters (the fenced blocks
after the ``<!-- tested: ... -->`` markers) added to a smoke project, the personalization stage
rerun, and the new method measured in the summary beside the others."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import polars as pl
import pytest

from tests.kedro_project import ROOT
from tests.test_console import ENV, private_smoke_project

DOC = ROOT / "docs" / "add-a-method.md"


def _block(marker: str) -> tuple[str, str]:
    """The marker's argument and the fenced block that follows it."""
    m = re.search(rf"<!-- tested: {marker}(?: (\S+))? -->\s*```\w*\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert m is not None, f"{DOC} has no block marked 'tested: {marker}'"
    return m.group(1), m.group(2)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return private_smoke_project(tmp_path_factory, "add-a-method")


def test_the_documented_method_runs_beside_the_others(project, tmp_path):
    filename, module = _block("module")
    _, parameters = _block("parameters")
    (tmp_path / filename).write_text(module, encoding="utf-8")
    (project / "conf" / "smoke" / "parameters_my_methods.yml").write_text(parameters, encoding="utf-8")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), ENV.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipeline", "personalization", "--env", "smoke"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = pl.read_csv(project / "data" / "smoke" / "08_reporting" / "personalization" / "summary.csv")
    row = summary.filter(pl.col("method") == "median_of_experts")
    assert row.height >= 1 and row["people"].min() > 0  # measured on the held-out people
    assert {"zero_shot_ensemble", "instant"} <= set(summary["method"])  # beside the others


def test_a_module_that_cannot_be_imported_is_named(project):
    from aestimo import config

    with pytest.raises(ValueError, match=r"personalize\.modules\.0.*no_such_module_anywhere.*PYTHONPATH"):
        config.parse("personalize", {"modules": ["no_such_module_anywhere"], "methods": {"z": {"method": "zero_shot_ensemble"}}})
