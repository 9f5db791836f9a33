"""`aestimo people` on a copy of the smoke project with one person of one's own (made by `aestimo
personalize`): the list (own first, then the run's held-out people, each id as source:rater_id and
never the on-disk key), `people show`, `people rm` (asks, refuses off a terminal, removes with
--yes, never removes the run's people), and the closest ids for an unknown one."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from aestimo import console
from aestimo.console import main as cli
from tests.test_console import private_smoke_project

N_RATED = 12


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A private copy of the smoke project where `aestimo personalize` made 'own:me' from 12 ratings."""
    project = private_smoke_project(tmp_path_factory, "people")
    images = sorted((project / "data" / "smoke" / "01_raw").rglob("*.jpg"))[:N_RATED]
    ratings = project / "my_ratings.csv"
    ratings.write_text("image,score\n" + "".join(f"{p},{1 + i % 5}\n" for i, p in enumerate(images)))
    assert cli(["personalize", str(ratings), "--name", "me", "--project", str(project), "--env", "smoke"]) == 0
    return project


def _models(project: Path) -> Path:
    return project / "data" / "smoke" / "06_models"


def _held_out(project: Path) -> list[str]:
    """The run's held-out people, as a user writes them (from the file names)."""
    files = (_models(project) / "user_coefficients").glob("*.safetensors")
    return sorted(p.stem.replace("__", ":", 1) for p in files if not p.stem.startswith("own__"))


def _people(project: Path, *args: str) -> int:
    return cli(["people", *args, "--project", str(project), "--env", "smoke"])


def _rows(out: str) -> list[list[str]]:
    """The table's rows under its header, split at runs of two or more spaces."""
    import re

    lines = out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "PERSONALIZED", "HOW", "K", "METHOD"]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def test_people_lists_ones_own_first_then_the_runs_held_out_people(project, capsys):
    assert _people(project) == 0
    out = capsys.readouterr().out
    assert "__" not in out  # the on-disk key is never shown
    rows = _rows(out)
    held = _held_out(project)
    assert [r[0] for r in rows] == ["own:me", *held]
    me = rows[0]
    assert me[1:4] == ["own", me[2], "aestimo personalize"] and me[4] == str(N_RATED)
    deployed = me[5]
    assert all(r[1] == "held-out" and r[3] == "kedro run (held-out person)" and r[5] == deployed for r in rows[1:])
    assert all(r[4] and all(k.isdigit() for k in r[4].split(",")) for r in rows[1:])

    assert _people(project, "--own") == 0
    assert [r[0] for r in _rows(capsys.readouterr().out)] == ["own:me"]


def test_people_show_tells_who_how_and_with_what(project, capsys):
    assert _people(project, "show", "me") == 0  # a bare id works when one source has it
    out = capsys.readouterr().out
    assert "__" not in out
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["id"] == "own:me" and fields["kind"].startswith("own")
    assert fields["ratings"] == f"{N_RATED} used, from {project / 'my_ratings.csv'}"
    assert fields["k"].startswith(f"{N_RATED} ") and fields["source"] == "own, scale 1-5"
    assert fields["score with"] == "aestimo score --user own:me PHOTOS..."

    someone = _held_out(project)[0]
    assert _people(project, "show", someone) == 0
    fields = {k: v.strip() for k, v in (line.split(":", 1) for line in capsys.readouterr().out.splitlines())}
    assert fields["id"] == someone and fields["kind"].startswith("held-out")
    assert len(fields["fitted"].split("; ")) > 1  # the run fits every method; `aestimo score --method` picks one


def test_an_unknown_id_names_the_closest_ones(project, capsys):
    someone = _held_out(project)[0]
    source, rater = someone.split(":")
    assert _people(project, "show", f"{source}:{rater[:-1]}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: unknown person '{source}:{rater[:-1]}': did you mean '{someone}'"), err
    assert _people(project, "rm", "own:mee", "--yes") == 2
    assert "did you mean 'own:me'?" in capsys.readouterr().err
    assert _people(project, "show", "own:nobody-like-this") == 2
    assert "no personalized person has that id" in capsys.readouterr().err


def test_rm_removes_only_ones_own_and_asks_first(project, capsys, monkeypatch, tmp_path):
    models = _models(project)
    mine = models / "user_coefficients" / "own__me.safetensors"
    copy = tmp_path / "me.safetensors"
    shutil.copy2(mine, copy)  # to put back for the other tests

    someone = _held_out(project)[0]
    assert _people(project, "rm", someone, "--yes") == 2  # the run's people: a run writes them again
    assert "not removing" in capsys.readouterr().err and len(_held_out(project)) > 0

    # new_people_ratings' people are removed by removing their ratings file
    (models / "new_people_coefficients").mkdir(exist_ok=True)
    shutil.copy2(mine, models / "new_people_coefficients" / "own__bob.safetensors")
    assert _people(project, "show", "own:bob") == 0
    assert "kedro run (new_people_ratings file)" in capsys.readouterr().out
    assert _people(project, "rm", "own:bob", "--yes") == 2
    assert "new_people_ratings file" in capsys.readouterr().err

    assert _people(project, "rm", "own:me") == 2  # no terminal to ask on: nothing removed
    assert "without --yes" in capsys.readouterr().err and mine.exists()

    class Answer(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(console, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr("sys.stdin", Answer("n\n"))
    assert _people(project, "rm", "own:me") == 1
    assert "remove 'own:me'" in capsys.readouterr().err and mine.exists()
    monkeypatch.setattr("sys.stdin", Answer("y\n"))
    assert _people(project, "rm", "own:me") == 0
    assert not mine.exists() and "removed 'own:me'" in capsys.readouterr().err
    monkeypatch.undo()

    assert _people(project, "--own") == 0
    assert [r[0] for r in _rows(capsys.readouterr().out)] == ["own:bob"]
    assert _people(project, "rm", "own:me", "--yes") == 2  # gone
    shutil.copy2(copy, mine)
    (models / "new_people_coefficients" / "own__bob.safetensors").unlink()


def test_bad_people_commands_exit_2_with_one_line(project, tmp_path, capsys):
    for argv in (["people", "show"], ["people", "list", "me"], ["people", "show", "me", "--yes"]):
        with pytest.raises(SystemExit) as exit_:
            cli([*argv, "--project", str(project), "--env", "smoke"])
        assert exit_.value.code == 2
        assert "error:" in capsys.readouterr().err
    assert cli(["people", "--project", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: '{tmp_path.resolve()}' is not an Aestimo project")


def test_closest_ids_are_the_likely_typos_and_nothing_far():
    from aestimo.own_people import closest

    ids = ["flickr_aes:A07M2Z3G3RXWO", "flickr_aes:AGU0RLA2VI6XW", "para:A12809a", "own:me", "own:alice"]
    assert closest("flickr_aes:A07M2Z3G3RXW", ids) == ["flickr_aes:A07M2Z3G3RXWO"]  # one letter left off
    assert closest("flickr_aes:a07m2z3g3rxwo", ids) == ["flickr_aes:A07M2Z3G3RXWO"]  # case
    assert closest("flikr_aes:A07M2Z3G3RXWO", ids) == ["flickr_aes:A07M2Z3G3RXWO"]  # the source misspelt
    assert closest("para:A07M2Z3G3RXWO", ids) == ["flickr_aes:A07M2Z3G3RXWO"]  # the wrong source
    assert closest("alice", ids) == ["own:alice"]  # a bare id, among every source
    assert closest("own:zed", ids) == [] and closest("flickr_aes:NOBODY", ids) == []
