"""Quiet command lines: `aestimo score` on a finished run leaves a line or two on stderr (the
project's own), from any folder; Kedro's own INFO lines and its irrelevant warnings come back
only with -v (`aestimo`) or AESTIMO_VERBOSE=1 (`kedro run`); a log line is one line when stderr is
not a terminal and rich's columns when it is; no progress bar off a terminal; and the notebook's
cells get no coloured Kedro output."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aestimo import logs
from aestimo.hooks import LoggingHooks
from tests.kedro_project import ROOT
from tests.test_console import ENV, _aestimo, album, person, private_smoke_project, project  # noqa: F401 (fixtures)

#: A log line as the plain handler writes it: one line per record, whatever its length.
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def own_project(tmp_path_factory) -> Path:
    """A private copy of the smoke project with the experts' weights, for runs that rewrite its files."""
    return private_smoke_project(tmp_path_factory, "quiet", leave_out=("checkpoints",))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if k not in ("AESTIMO_VERBOSE", "TQDM_DISABLE", "KEDRO_LOGGING_CONFIG")}
    return {**env, **extra}


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_score_leaves_at_most_five_lines_on_stderr_from_any_folder_and_v_brings_kedro_back(project, person, album, tmp_path):
    user, _ = person
    args = ("score", "--user", user, "--env", "smoke", "--project", str(project), str(album))
    elsewhere, inside = _aestimo(*args, cwd=tmp_path), _aestimo(*args, cwd=project)
    for done in (elsewhere, inside):
        assert done.returncode == 0, done.stderr
        lines = _lines(done.stderr)
        assert 1 <= len(lines) <= 5, lines
        assert all(LINE.match(line) for line in lines), lines  # whole lines, not rich's 80 columns
        assert not any(" kedro" in line or "Warning" in line for line in lines), lines
        assert any("aestimo.scoring: scoring with λ" in line for line in lines)
    assert len(_lines(elsewhere.stderr)) == len(_lines(inside.stderr))  # the same wherever it runs

    verbose = _aestimo(*args, "-v", cwd=tmp_path)
    assert verbose.returncode == 0 and verbose.stdout == elsewhere.stdout
    lines = _lines(verbose.stderr)
    assert len(lines) > 5 and all(LINE.match(line) for line in lines), lines
    assert any(line.endswith("kedro.io.data_catalog: Loading data from theta0 (SafetensorsDataset)...") for line in lines)


def test_kedro_run_shows_the_projects_progress_and_not_kedros_own_lines(own_project):
    run = ["kedro", "run", "--pipeline", "task_vectors", "--env", "smoke"]  # the docs' singular --pipeline
    done = subprocess.run(run, cwd=own_project, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = _lines(done.stderr)
    assert lines and all(LINE.match(line) for line in lines), lines
    assert all(" aestimo." in line for line in lines), lines  # no kedro INFO line, no warning
    assert any(re.search(r"aestimo\.hooks: running \d+ nodes$", line) for line in lines)
    assert any("aestimo.hooks: run time by stage" in line for line in lines)

    one_node = [*run, "--nodes", "task_vectors.task_vector_norms"]
    verbose = subprocess.run(one_node, cwd=own_project, env=_env(AESTIMO_VERBOSE="1"), capture_output=True, text=True, timeout=600)
    assert verbose.returncode == 0, verbose.stderr
    assert "kedro.io.data_catalog: Loading data from task_vectors" in verbose.stderr
    assert "kedro.runner" in verbose.stderr


def test_conf_logging_yml_is_the_command_lines_logging():
    """`kedro run` reads conf/logging.yml; the aestimo command its copy: they say the same."""
    assert yaml.safe_load((ROOT / "conf" / "logging.yml").read_text(encoding="utf-8")) == logs.LOGGING


def test_a_long_log_line_is_one_line_off_a_terminal_and_rich_on_one(capsys, monkeypatch):
    logs.quiet_logging()
    message = "a long message " + "word " * 60
    logging.getLogger("aestimo.test_quiet").info(message)
    logging.getLogger("kedro.test_quiet").info("Kedro's own line")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip("\n").endswith(f"INFO aestimo.test_quiet: {message}")

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logging.getLogger("aestimo.test_quiet").info("on a terminal")
    monkeypatch.undo()
    shown = terminal.getvalue()
    assert "on a terminal" in shown and "aestimo.test_quiet:" not in shown  # rich's columns, not the plain line
    assert capsys.readouterr().err == ""


def test_progress_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "0")  # recorded, so that the value set below is undone
    monkeypatch.delenv("TQDM_DISABLE")
    monkeypatch.setattr(sys, "stderr", _Terminal())
    logs.hide_progress_bars_off_a_terminal()
    LoggingHooks().after_context_created()
    assert "TQDM_DISABLE" not in os.environ
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    LoggingHooks().after_context_created()
    assert os.environ.get("TQDM_DISABLE") == "1"

    code = ("from aestimo.logs import hide_progress_bars_off_a_terminal as hide; hide()\n"
            "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='bar'): pass")
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_notebook_cells_get_no_kedro_lines(own_project, monkeypatch):
    """Its first cell, in a folder of the project (Jupyter starts a notebook's kernel in the notebook's
    folder, where Kedro finds no conf/logging.yml and would colour every cell with its INFO lines)."""
    why = "running the notebook needs nbclient and ipykernel (the test extra: pip install -e '.[test]')"
    nbclient = pytest.importorskip("nbclient", reason=why)
    nbformat = pytest.importorskip("nbformat", reason=why)
    pytest.importorskip("ipykernel", reason=why)
    folder = own_project / "notebooks"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("AESTIMO_ENV", "smoke")
    for name in ("AESTIMO_VERBOSE", "KEDRO_LOGGING_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    nb = nbformat.read(ROOT / "notebooks" / "explore_ratings.ipynb", as_version=4)
    nb.cells = [next(c for c in nb.cells if c.cell_type == "code")]
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    outputs = nb.cells[0].outputs
    stdout = "".join(o.get("text", "") for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert f"project {own_project}, environment smoke" in stdout
    other = [o for o in outputs if not (o.output_type == "stream" and o.name == "stdout")]
    assert other == [], other  # no stderr line, no rich display
