"""`aestimo personalize RATINGS.csv --name NAME` as a new user meets it, and the Kedro way
(``new_people_ratings`` files -> ``personalize_new_people`` -> ``new_people_coefficients``), on a
copy of the smoke project: a person whose taste is known (one expert's zero-shot opinion) is
learned, `aestimo score --user NAME` then scores with their λ, and every bad input gets its
message, its exit code and no file."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from aestimo.bundle import TensorBundle, load_bundle, save_bundle
from aestimo.console import PERSONALIZE_EXIT_CODES, main as cli
from aestimo.data.scales import user_scale
from aestimo.evaluation import metrics
from aestimo.personalization.running import selection
from aestimo.pipelines.personalize.new_people import personalize_new_people
from aestimo.scoring import PersonalScorer, pick_lambda
from tests.kedro_project import catalog, inside, new_project
from tests.test_console import ENV, private_smoke_project

N_RATED = 40


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A private copy of the shared smoke project, so this module's people stay here."""
    return private_smoke_project(tmp_path_factory, "personalize")


@pytest.fixture(scope="module")
def world(project):
    """The images every expert scored (test and held-out people's images), their paths (relative to the
    project) and each expert's zero-shot score, in a seeded order; and the deployed method."""
    with inside(project):
        cat = catalog(project)
        preds, images, params = cat.load("expert_predictions"), cat.load("images"), cat.load("params:personalize")
    tmpl = np.arange(1, 11, dtype=np.float64)
    wide = (
        preds.with_columns(pl.col("probs").map_elements(lambda p: float(np.dot(p, tmpl)), return_dtype=pl.Float64).alias("s"))
        .pivot(on="expert", index="image_id", values="s")
        .join(images.select("image_id", "path"), on="image_id")
        .sort("image_id")
        .sample(fraction=1.0, shuffle=True, seed=3)
    )
    return wide, params["deploy_method"]


def _chosen_for_deployed(project: Path, deployed: str) -> dict[str, float]:
    """The settings the run chose on validation people for the deployed method's registry method."""
    with inside(project):
        cat = catalog(project)
        method = cat.load("params:personalize")["methods"][deployed]["method"]
        return selection.chosen_settings(cat.load("chosen_settings")).get(method, {})


def _experts(wide: pl.DataFrame) -> list[str]:
    return sorted(set(wide.columns) - {"image_id", "path"})


def _taste(wide: pl.DataFrame) -> np.ndarray:
    """The person's ratings of every image on 1-5: the zero-shot opinion of the expert the ensemble of
    experts agrees with least (the most to learn), stretched, plus a little noise."""
    ensemble = wide.select(_experts(wide)).to_numpy().mean(axis=1)
    expert = min(_experts(wide), key=lambda e: metrics.srocc(wide[e].to_numpy(), ensemble))
    s = wide[expert].to_numpy()
    noise = np.random.default_rng(0).normal(0, 0.02, len(s))
    return np.round(np.clip(1 + 4 * (s - s.min()) / (s.max() - s.min()) + noise, 1, 5), 2)


def _write(path: Path, rows, header: str | None = "image,score") -> Path:
    lines = ([header] if header else []) + [f"{p},{y}" for p, y in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _people(project: Path, dataset: str = "user_coefficients") -> set[str]:
    folder = project / "data" / "smoke" / "06_models" / dataset
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _personalize(project: Path, *args: str) -> int:
    return cli(["personalize", *args, "--project", str(project), "--env", "smoke"])


def _error(err: str) -> str:
    """The error line of what the command wrote on stderr (Kedro's log lines come first, in-process)."""
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    return "\n".join(lines[first:])


def _scores(out: Path) -> dict[str, float]:
    return {r["path"]: float(r["score"]) for r in csv.DictReader(io.StringIO(out.read_text()))}


# --- a person whose taste is known ---------------------------------------------------------------


def test_my_ratings_make_a_person_that_ranks_my_other_photos_better_than_the_zero_shot_ensemble(project, world, tmp_path, capsys):
    wide, deployed = world
    y = _taste(wide)
    paths = wide["path"].to_list()
    ratings = _write(project / "my_ratings.csv", zip(paths[:N_RATED], y[:N_RATED]))  # paths relative to the CSV's folder
    assert _personalize(project, str(ratings), "--name", "me") == 0
    err = capsys.readouterr().err
    assert f"personalized 'own:me' with '{deployed}'" in err
    assert f" on {N_RATED} of {N_RATED} ratings (scale 1-5, inferred from the scores" in err
    assert "score with: aestimo score --user own:me" in err
    chosen = _chosen_for_deployed(project, deployed)  # fitted as the pipeline fits its people
    assert all(f"{k}={v:g}" in err for k, v in chosen.items()) and ("chosen on validation people" in err) == bool(chosen)
    saved = project / "data" / "smoke" / "06_models" / "user_coefficients" / "own__me.safetensors"
    bundle = load_bundle(saved)
    assert bundle.meta["deploy_method"] == deployed and bundle.meta["source"] == "own" and bundle.meta["rater_id"] == "me"
    assert bundle.meta["scale"] == [1.0, 5.0]
    key, lam = pick_lambda(bundle, None, None)
    assert key == f"{deployed}/k{N_RATED}/r0/lambda"

    held = [str(project / p) for p in paths[N_RATED:]]
    out = tmp_path / "scores.csv"
    assert cli(["score", "--user", "me", "--project", str(project), "--env", "smoke", "-o", str(out), *held]) == 0
    got = _scores(out)
    assert list(got) == held
    mine = np.array(list(got.values()))
    assert ((1 <= mine) & (mine <= 5)).all()  # on the person's own scale

    truth = y[N_RATED:]
    ensemble = wide.select(_experts(wide)).to_numpy()[N_RATED:].mean(axis=1)
    srocc_mine, srocc_ensemble = metrics.srocc(truth, mine), metrics.srocc(truth, ensemble)
    assert srocc_mine > srocc_ensemble, (deployed, srocc_mine, srocc_ensemble)

    # exactly the scorer at the saved λ; not the zero-shot merged model (uniform λ)
    with inside(project):
        cat = catalog(project)
        theta0, tau = cat.load("theta0"), cat.load("task_vectors")
    paths_held = [Path(p) for p in held]
    at_lambda = PersonalScorer.from_bundles(theta0, tau, bundle).score_paths(paths_held).table["score"].to_numpy()
    np.testing.assert_allclose(mine, at_lambda, rtol=0, atol=1e-6)
    uniform = torch.full_like(lam, 1.0 / lam.shape[0])
    zero_shot = PersonalScorer(theta0, tau, uniform, "own", user_scale(1, 5)).score_paths(paths_held).table["score"].to_numpy()
    assert np.abs(mine - zero_shot).max() > 1e-3

    out2 = tmp_path / "scores2.csv"
    assert cli(["score", "--user", "own:me", "--project", str(project), "--env", "smoke", "-o", str(out2), *held[:3]]) == 0
    assert list(_scores(out2).values()) == pytest.approx(mine[:3].tolist(), abs=1e-6)


def test_unreadable_images_are_named_the_rest_used_and_saved_with_exit_1(project, world):
    """As a user runs it, in the project folder: stdout stays empty, messages go to stderr."""
    wide, _ = world
    y = _taste(wide)
    folder = project / "partly"
    folder.mkdir()
    (folder / "notes.jpg").write_text("not an image")
    rows = [(os.path.relpath(project / p, folder), v) for p, v in zip(wide["path"].to_list()[:12], y[:12])]
    ratings = _write(folder / "r.csv", rows + [("gone.jpg", 3), ("notes.jpg", 4)])
    done = subprocess.run(
        [sys.executable, "-m", "aestimo.console", "personalize", str(ratings), "--name", "partly", "--env", "smoke"],
        cwd=project, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert f"left out: {ratings}, row 14, column 1 (image path): {folder / 'gone.jpg'}: file not found" in done.stderr
    assert f"left out: {ratings}, row 15, column 1 (image path): {folder / 'notes.jpg'}: not a readable image" in done.stderr
    assert "on 12 of 14 ratings" in done.stderr
    assert load_bundle(project / "data" / "smoke" / "06_models" / "user_coefficients" / "own__partly.safetensors").meta["ratings_used"] == 12


# --- bad input: a clear message, exit 2, nothing written ---------------------------------------------


def _cases(project: Path, wide: pl.DataFrame, folder: Path) -> dict[str, tuple[list[str], str]]:
    y = _taste(wide)
    good = [(str(project / p), v) for p, v in zip(wide["path"].to_list(), y)]
    f = {name: folder / f"{name}.csv" for name in ("few", "few_readable", "equal", "outside", "columns", "number", "nowhere")}
    _write(f["few"], good[:9])
    _write(f["few_readable"], good[:9] + [(str(folder / "gone.jpg"), 2)])
    _write(f["equal"], [(p, 3) for p, _ in good[:12]])
    _write(f["outside"], good[:2] + [(good[2][0], 7)] + good[3:12])
    f["columns"].write_text("image,score\na.jpg,3\nb.jpg,4,5\n")
    f["number"].write_text("a.jpg,3\nb.jpg,x\n")
    return {
        "too few ratings": ([str(f["few"])], f"{f['few']}: 9 usable ratings (9 rows, 0 images unreadable); personalizing with"),
        "too few readable images": ([str(f["few_readable"])], f"{f['few_readable']}: 9 usable ratings (10 rows, 1 images unreadable)"),
        "all scores equal": ([str(f["equal"])], f"{f['equal']}: all 12 usable ratings are the same score (3)"),
        "a score outside the stated scale": ([str(f["outside"]), "--scale", "1-5"], f"{f['outside']}, row 4, column 2 (score): 7 is outside the scale 1-5 (given)"),
        "a malformed row": ([str(f["columns"])], f"{f['columns']}, row 3: expected 2 columns (image path, score), found 3"),
        "a score that is not a number": ([str(f["number"])], f"{f['number']}, row 2, column 2 (score): 'x' is not a number"),
        "no ratings file": ([str(f["nowhere"])], f"{f['nowhere']}: no such ratings file"),
    }


@pytest.mark.parametrize("case", ["too few ratings", "too few readable images", "all scores equal", "a score outside the stated scale",
                                  "a malformed row", "a score that is not a number", "no ratings file"])
def test_bad_ratings_exit_2_with_file_row_and_column_and_write_nothing(project, world, tmp_path, capsys, case):
    args, message = _cases(project, world[0], tmp_path)[case]
    before = _people(project)
    assert _personalize(project, *args, "--name", "bad") == 2
    err = _error(capsys.readouterr().err)
    assert err.startswith(f"error: {message}"), err
    if case == "too few readable images":  # the unreadable image on the next line
        assert err.splitlines()[1].startswith("  ") and f"{tmp_path / 'gone.jpg'}: file not found" in err.splitlines()[1]
    assert _people(project) == before  # no file, no temporary file


def test_an_existing_name_is_refused_unless_overwrite(project, world, tmp_path, capsys):
    wide, _ = world
    y = _taste(wide)
    rows = [(str(project / p), v) for p, v in zip(wide["path"].to_list(), y)]
    saved = project / "data" / "smoke" / "06_models" / "user_coefficients" / "own__twice.safetensors"
    save_bundle(TensorBundle({"x": torch.zeros(1)}, {"source": "own", "rater_id": "twice"}), saved)  # an earlier one
    first = saved.read_bytes()
    again = _write(tmp_path / "b.csv", rows[12:27])
    assert _personalize(project, str(again), "--name", "twice") == 2
    assert "error: a person 'own:twice' exists already: pass --overwrite to replace them" in capsys.readouterr().err
    assert saved.read_bytes() == first
    assert _personalize(project, str(again), "--name", "twice", "--overwrite") == 0
    assert load_bundle(saved).meta["ratings_used"] == 15


def test_no_project_no_environment_or_no_trained_experts_exit_2(project, world, tmp_path, capsys):
    wide, _ = world
    ratings = _write(tmp_path / "r.csv", [(str(project / p), v) for p, v in zip(wide["path"].to_list()[:12], _taste(wide)[:12])])
    assert cli(["personalize", str(ratings), "--name", "x", "--project", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (  # one line, before Kedro starts
f"error: '{tmp_path.resolve()}' is not an Aestimo project (no pyproject.toml with [tool.kedro]); "
                                       "run it in the project folder, or pass --project the project folder\n")
    assert cli(["personalize", str(ratings), "--name", "x", "--project", str(project), "--env", "nope"]) == 2
    assert "error: no Kedro environment 'nope'" in capsys.readouterr().err
    fresh = new_project(tmp_path / "fresh")  # configured, never run
    assert cli(["personalize", str(ratings), "--name", "x", "--project", str(fresh), "--env", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "run `kedro run --pipeline personalize --to-outputs task_vectors --env smoke` there first" in err, err
    assert not (fresh / "data").exists()


@pytest.mark.parametrize("argv", [["--name", "a:b"], ["--name", "../up"], ["--name", "me", "--scale", "5-1"], ["--name", "me", "--scale", "ten"], []])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["personalize", "r.csv", *argv])
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["personalize", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert PERSONALIZE_EXIT_CODES in out and "optional (a first row whose score is not a number" in out


def test_an_unexpected_error_exits_3_with_one_line(monkeypatch, capsys):
    import aestimo.console

    def boom(*args, **kwargs):
        raise ZeroDivisionError("an unexpected\nfailure")

    monkeypatch.setattr(aestimo.console, "project_personalize", boom)
    monkeypatch.delenv("AESTIMO_DEBUG", raising=False)
    assert cli(["personalize", "r.csv", "--name", "me"]) == 3
    err = capsys.readouterr().err
    assert err == "error: ZeroDivisionError: an unexpected failure (rerun with --debug or AESTIMO_DEBUG=1 for the traceback)\n"
    assert cli(["personalize", "r.csv", "--name", "me", "--debug"]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


# --- the Kedro way: one ratings file per person in data/01_raw/new_people ----------------------------

NODE = Node(
    personalize_new_people,
    inputs=["new_people_ratings", "theta0", "task_vectors", "chosen_settings", "params:personalize"],
    outputs="new_people_coefficients",
    name="personalize_new_people",
)


def _run_node(project: Path) -> None:
    with inside(project):
        SequentialRunner().run(Pipeline([NODE]), catalog(project))


def test_new_people_files_are_personalized_by_the_node_and_scored_by_name(project, world, tmp_path, capsys):
    wide, deployed = world
    y = _taste(wide)
    raw = project / "data" / "smoke" / "01_raw" / "new_people"
    shutil.rmtree(raw, ignore_errors=True)
    _run_node(project)  # no folder: no people, no error
    raw.mkdir()
    _run_node(project)  # an empty folder: the same
    assert _people(project, "new_people_coefficients") == set()

    paths = wide["path"].to_list()
    rel = [os.path.relpath(project / p, raw) for p in paths]  # relative to the ratings file's folder
    (raw / "bob.csv").write_text("# scale: 0-100\n" + "\n".join(f"{p},{round(25 * (v - 1), 1)}" for p, v in zip(rel[:20], y[:20])) + "\n")
    _write(raw / "carol.csv", zip(rel[20:35], y[20:35]))
    _run_node(project)
    assert _people(project, "new_people_coefficients") == {"own__bob.safetensors", "own__carol.safetensors"}
    bob = load_bundle(project / "data" / "smoke" / "06_models" / "new_people_coefficients" / "own__bob.safetensors")
    assert bob.meta["scale"] == [0.0, 100.0] and f"{deployed}/k20/r0/lambda" in bob.tensors

    image = str(project / paths[40])
    out = tmp_path / "bob.csv"
    assert cli(["score", "--user", "bob", "--project", str(project), "--env", "smoke", "-o", str(out), image]) == 0
    with inside(project):
        cat = catalog(project)
        want = PersonalScorer.from_bundles(cat.load("theta0"), cat.load("task_vectors"), bob).score_paths([Path(image)]).table["score"][0]
    assert _scores(out)[image] == pytest.approx(want, abs=1e-6) and 0 <= want <= 100

    capsys.readouterr()
    ratings = _write(tmp_path / "r.csv", [(str(project / p), v) for p, v in zip(paths[:12], y[:12])])
    assert _personalize(project, str(ratings), "--name", "bob", "--overwrite") == 2  # a name the Kedro way holds
    assert "'own:bob' is a new person of the new_people_ratings files (bob.csv" in capsys.readouterr().err
    assert "own__bob.safetensors" not in _people(project)

    # the same person in both places: `score` says so instead of picking one
    save_bundle(bob, project / "data" / "smoke" / "06_models" / "user_coefficients" / "own__bob.safetensors")
    try:
        assert cli(["score", "--user", "bob", "--project", str(project), "--env", "smoke", image]) == 2
        assert "has coefficients in both user_coefficients and new_people_coefficients" in capsys.readouterr().err
    finally:
        (project / "data" / "smoke" / "06_models" / "user_coefficients" / "own__bob.safetensors").unlink()

    # a bad file stops the run with its row and column, and the earlier states stay as they were
    (raw / "alice.csv").write_text("a.jpg,3\nb.jpg,lots\n")
    with pytest.raises(Exception, match=r"alice.csv, row 2, column 2 \(score\): 'lots' is not a number"):
        _run_node(project)
    assert _people(project, "new_people_coefficients") == {"own__bob.safetensors", "own__carol.safetensors"}
    (raw / "alice.csv").unlink()

    # a removed file removes its person at the next run
    (raw / "carol.csv").unlink()
    _run_node(project)
    assert _people(project, "new_people_coefficients") == {"own__bob.safetensors"}
