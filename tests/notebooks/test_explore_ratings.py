"""notebooks/explore_ratings.ipynb runs headless, top to bottom, on a smoke run's outputs
(``AESTIMO_ENV=smoke``; without it the notebook reads the main job's data/)."""

from __future__ import annotations

import json

import pytest

from tests.kedro_project import ROOT
from tests.test_console import smoke_project

NOTEBOOK = ROOT / "notebooks" / "explore_ratings.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_notebook_runs_on_a_smoke_run(tmp_path_factory, monkeypatch):
    why = "running the notebook needs nbclient and ipykernel (the test extra: pip install -e '.[test]')"
    nbclient = pytest.importorskip("nbclient", reason=why)
    nbformat = pytest.importorskip("nbformat", reason=why)
    pytest.importorskip("ipykernel", reason=why)
    project = smoke_project(tmp_path_factory)
    monkeypatch.setenv("AESTIMO_ENV", "smoke")  # the kernel inherits this process's environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(project)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.get("name") == "stdout")
    assert f"project {project}, environment smoke" in text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2  # the personalization summary and one person's λ
    tables = [o for o in outputs if o.output_type == "execute_result" and "text/html" in o.data]
    assert len(tables) == 4  # the table tour, ratings per source, the summary and the comparisons
