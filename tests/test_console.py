"""`aestimo score` and `aestimo.score` as a new user meets them: a clean CSV on stdout (every log
line and warning on stderr), one exit code per outcome, one line outside a project; and the
catalog's kedro-viz previews, which must serialize."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import aestimo
from aestimo.console import EXIT_CODES, NotAProjectError, main as cli
from tests.kedro_project import ROOT, catalog, inside, new_project, run

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def smoke_project(tmp_path_factory) -> Path:
    """A temporary copy of the project where `kedro run --pipeline personalize --env smoke` ran:
    made once per test run, shared by the xdist workers (and by tests/notebooks)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' common folder, this test run's only
    project = base / "smoke-project"
    with FileLock(str(base / "smoke-project.lock")):
        if not (project / ".done").exists():
            shutil.rmtree(project, ignore_errors=True)
            project.mkdir()
            new_project(project)
            with inside(project):
                run(project, "personalize")
            (project / ".done").touch()
    return project


def private_smoke_project(tmp_path_factory, name: str, leave_out: tuple[str, ...] = ("checkpoints", "experts")) -> Path:
    """A private copy of the shared smoke project (its large model files hard-linked: every write
    replaces a file, never changes one in place), for a module that adds, removes or rewrites files;
    without the folders named ``leave_out`` (by default the experts' weights and checkpoints, which
    only a run of the experts or task vectors reads)."""
    source = smoke_project(tmp_path_factory)
    target = tmp_path_factory.mktemp(name) / "project"

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".safetensors"):
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy,
                    ignore=shutil.ignore_patterns(*leave_out, ".done", "*.lock"))
    return target


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    return smoke_project(tmp_path_factory)


@pytest.fixture(scope="session")
def person(project) -> tuple[str, Path]:
    """A personalized person (``source:rater_id``) and the folder of their model files."""
    models = project / "data" / "smoke" / "06_models"
    key = sorted(p.stem for p in (models / "user_coefficients").glob("flickr_aes__*.safetensors"))[0]
    return key.replace("__", ":", 1), models


@pytest.fixture
def album(project, tmp_path) -> Path:
    """Two of the project's images in a folder."""
    folder = tmp_path / "album"
    folder.mkdir()
    for p in sorted((project / "data" / "smoke" / "01_raw").rglob("*.jpg"))[:2]:
        shutil.copy(p, folder / p.name)
    assert len(list(folder.iterdir())) == 2
    return folder


def _aestimo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aestimo.console", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


# --- 1. results on stdout, everything else on stderr -------------------------------------------


@pytest.mark.parametrize("where", ["in the project", "elsewhere, with --project"])
def test_score_prints_a_clean_csv_on_stdout_and_the_logs_on_stderr(project, person, album, tmp_path, where):
    user, _ = person
    if where == "in the project":  # Kedro reads the project's conf/logging.yml
        done = _aestimo("score", "--user", user, "--env", "smoke", str(album), cwd=project)
        want_code, n = 0, 2
    else:  # Kedro's own logging configuration (it looks for conf/logging.yml in the current folder)
        (album / "notes.jpg").write_text("not an image")
        done = _aestimo("score", "--user", user, "--env", "smoke", "--project", str(project), str(album), cwd=tmp_path)
        want_code, n = 1, 2
    assert done.returncode == want_code, done.stderr
    assert done.stdout.splitlines()[0] == "path,score"
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == n and all(1 <= float(r["score"]) <= 5 for r in rows)  # a flickr_aes/para person's scale
    assert "Loading data from" not in done.stderr  # quiet: Kedro's own INFO lines only with -v (tests/test_quiet.py)
    assert "scoring with λ" in done.stderr  # the project's own lines are there, on stderr
    if want_code == 1:
        assert "notes.jpg: not a readable image" in done.stderr


def test_the_projects_logging_configuration_writes_to_stderr():
    """`kedro run > out.txt` too keeps log lines and warnings out of stdout."""
    code = ("import logging, warnings, kedro.framework.project; logging.getLogger('aestimo').info('a log line'); "
            "logging.getLogger('kedro').warning('a Kedro warning'); warnings.warn('a warning')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "a log line" in done.stderr and "a Kedro warning" in done.stderr and "a warning" in done.stderr


# --- 2. exit codes --------------------------------------------------------------------------------


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["score", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert EXIT_CODES in out
    for code in range(4):
        assert f"\n  {code}  " in out


@pytest.mark.parametrize(
    "argv",
    [
        ["score"],  # no images
        ["score", "--bogus", "a.jpg"],
        ["score", "--coefficients", "c.safetensors", "a.jpg"],  # without --theta0, --task-vectors
        ["score", "--user", "ava:1", "--theta0", "t.safetensors", "a.jpg"],
        ["score", "--user", "ava:1", "--output", "/no/such/folder/scores.csv", "a.jpg"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_missing_or_unreadable_model_files_exit_2(tmp_path, capsys):
    files = ["--theta0", str(tmp_path / "theta0.safetensors"), "--task-vectors", str(tmp_path / "tv.safetensors")]
    assert cli(["score", *files, "--coefficients", str(tmp_path / "nobody.safetensors"), "a.jpg"]) == 2
    assert "does not exist" in capsys.readouterr().err
    for name in ("theta0.safetensors", "tv.safetensors", "nobody.safetensors"):
        (tmp_path / name).write_text("not a safetensors file")
    assert cli(["score", *files, "--coefficients", str(tmp_path / "nobody.safetensors"), "a.jpg"]) == 2
    assert "is not a readable safetensors file" in capsys.readouterr().err


def test_unknown_person_exits_2(project, album, capsys):
    assert cli(["score", "--user", "flickr_aes:NOBODY", "--project", str(project), "--env", "smoke", str(album)]) == 2
    err = capsys.readouterr().err
    assert "unknown person 'flickr_aes:NOBODY': no personalized person has that id" in err and "`aestimo people` lists" in err


def test_a_mistyped_person_gets_the_closest_id(project, person, album, capsys):
    """One letter left off, a wrong case, or the source misspelt: the person meant is named."""
    user, _ = person
    source, rater = user.split(":")
    for typo in (f"{source}:{rater[:-1]}", f"{source}:{rater.lower()}", f"{source[:-1]}:{rater}"):
        assert cli(["score", "--user", typo, "--project", str(project), "--env", "smoke", str(album)]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: unknown person '{typo}': did you mean '{user}'"), errors


def test_a_project_without_a_run_or_environment_exits_2_and_says_what_to_do(tmp_path, capsys):
    empty = new_project(tmp_path)
    assert cli(["score", "--user", "flickr_aes:A", "--project", str(empty), "--env", "smoke", "a.jpg"]) == 2
    assert "run `kedro run --pipeline personalize --env smoke` there first" in capsys.readouterr().err
    assert cli(["score", "--user", "flickr_aes:A", "--project", str(empty), "--env", "nope", "a.jpg"]) == 2
    assert "no Kedro environment 'nope'" in capsys.readouterr().err


def test_files_of_one_person_score_from_anywhere_and_exit_0(person, album, tmp_path, monkeypatch, capsys):
    user, models = person
    monkeypatch.chdir(tmp_path)
    coefficients = models / "user_coefficients" / (user.replace(":", "__", 1) + ".safetensors")
    code = cli(["score", "--theta0", str(models / "theta0.safetensors"), "--task-vectors", str(models / "task_vectors.safetensors"),
                "--coefficients", str(coefficients), str(album)])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[0] == "path,score" and len(out.splitlines()) == 3


def test_score_runs_on_the_device_named_and_an_absent_one_exits_2(person, album, tmp_path, monkeypatch, capsys):
    user, models = person
    monkeypatch.chdir(tmp_path)
    coefficients = models / "user_coefficients" / (user.replace(":", "__", 1) + ".safetensors")
    files = ["--theta0", str(models / "theta0.safetensors"), "--task-vectors", str(models / "task_vectors.safetensors"),
             "--coefficients", str(coefficients), str(album)]
    assert cli(["score", *files, "--device", "cpu"]) == 0
    on_cpu = capsys.readouterr().out
    assert cli(["score", *files]) == 0  # auto: the best device present
    if not torch.cuda.is_available():
        assert capsys.readouterr().out == on_cpu
    assert cli(["score", *files, "--device", "tpu"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown device 'tpu': use auto, cpu, cuda, cuda:N or mps"]


class _Boom:
    def __init__(self, *args, **kwargs):
        raise ZeroDivisionError("an unexpected\nfailure")


@pytest.mark.parametrize("debug", ["no", "--debug", "AESTIMO_DEBUG=1"])
def test_an_unexpected_error_exits_3_with_one_line(debug, monkeypatch, capsys):
    import aestimo.scoring

    monkeypatch.setattr(aestimo.scoring.PersonalScorer, "from_files", _Boom)
    monkeypatch.delenv("AESTIMO_DEBUG", raising=False)
    argv = ["score", "--theta0", "t", "--task-vectors", "v", "--coefficients", "c", "a.jpg"]
    if debug == "--debug":
        argv.append("--debug")
    elif debug != "no":
        monkeypatch.setenv("AESTIMO_DEBUG", "1")
    assert cli(argv) == 3
    err = capsys.readouterr().err
    assert "error: ZeroDivisionError: an unexpected failure" in err
    if debug == "no":
        assert err.count("\n") == 1 and "--debug" in err  # one line, which says how to see more
    else:
        assert "Traceback (most recent call last)" in err


# --- 3. outside a project -------------------------------------------------------------------------


def test_score_outside_a_project_says_which_project_to_point_at(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as err:
        aestimo.score(["a.jpg"], user="flickr_aes:A")
    message = str(err.value)
    assert isinstance(err.value, NotAProjectError) and "\n" not in message
    assert message.startswith(f"'{tmp_path.resolve()}' is not an Aestimo project (no pyproject.toml with [tool.kedro])")
    assert "pass project= the project folder, or theta0=, task_vectors= and coefficients= paths" in message

    (tmp_path / "pyproject.toml").write_text('[tool.kedro]\npackage_name = "other"\n')
    with pytest.raises(ValueError, match="package is 'other', not 'aestimo'"):
        aestimo.score(["a.jpg"], user="flickr_aes:A", project=tmp_path)
    with pytest.raises(ValueError, match="no such folder"):
        aestimo.score(["a.jpg"], user="flickr_aes:A", project=tmp_path / "missing")


def test_cli_outside_a_project_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli(["score", "--user", "flickr_aes:A", "a.jpg"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: '{tmp_path.resolve()}' is not an Aestimo project (no pyproject.toml with [tool.kedro]); "
                   "pass --project the project folder, or --theta0, --task-vectors and --coefficients\n")


# --- 4. kedro-viz previews ------------------------------------------------------------------------


def test_every_kedro_viz_preview_serializes(project):
    """What `kedro viz build --include-previews` does per dataset: preview() with the catalog's
    preview_args unless `preview: false`, then encode it as kedro-viz does (it stops at the first failure)."""
    pytest.importorskip("kedro_viz")
    from kedro.framework.project import pipelines
    from kedro_viz.api.rest.responses.utils import get_encoded_response

    with inside(project):
        cat = catalog(project)
        names = sorted(set().union(*(p.datasets() for p in pipelines.values())))
        previewed, failed = [], {}
        for name in names:
            if name == "parameters" or name.startswith("params:"):
                continue
            dataset = cat.get(name)
            viz = (getattr(dataset, "metadata", None) or {}).get("kedro-viz") or {}
            if viz.get("preview") is False or not hasattr(dataset, "preview"):
                continue
            try:
                get_encoded_response(dataset.preview(**(viz.get("preview_args") or {})))
                previewed.append(name)
            except Exception as err:  # noqa: BLE001
                failed[name] = f"{type(err).__name__}: {err}"
    assert failed == {}
    assert {"ratings", "images", "personalization_summary", "personalization_summary_plot", "world_manifest"} <= set(previewed)
