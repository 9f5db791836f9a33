"""Personalizing a new person from their own ratings file (aestimo.personalization.new_person):
the file's rules (header, comments, scale), every bad input named by file, row and column, and
what a method is handed on the smoke project (any deployed method: fit(support, ctx))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from aestimo.config import PersonalizeParams
from aestimo.data.scales import SCALES, USER_SOURCE, infer_user_scale, user_scale
from aestimo.models.scorer import template_tensor
from aestimo.personalization import Method, register
from aestimo.personalization.running.keys import parse_state_key
from aestimo.data.own_ratings import RatingsError, check_name, parse_ratings, parse_scale, read_ratings
from aestimo.personalization.new_person import MIN_RATINGS, personalize_new_person
from tests.kedro_project import catalog, inside
from tests.test_console import smoke_project

BASE = Path("/photos")


def _parse(text: str, scale=None):
    return parse_ratings(text, "me.csv", BASE, scale)


# --- the file format --------------------------------------------------------------------------


def test_a_header_comments_blank_lines_and_quoted_paths_are_read():
    r = _parse('# my ratings\npath,score\n\na.jpg,4\n"b, c.jpg", 2.5 \n/abs/d.png,1,\n')
    assert [str(p) for p in r.paths] == ["/photos/a.jpg", "/photos/b, c.jpg", "/abs/d.png"]
    assert r.scores.tolist() == [4.0, 2.5, 1.0] and r.rows == [4, 5, 6]
    assert r.scale == (1.0, 5.0) and r.scale_origin == "inferred from the scores"


def test_the_header_is_optional():
    assert _parse("a.jpg,4\nb.jpg,2\n").paths == [BASE / "a.jpg", BASE / "b.jpg"]
    assert _parse("image,rating\na.jpg,4\n").scores.tolist() == [4.0]


@pytest.mark.parametrize(
    "scores, want",
    [([1, 5], (1, 5)), ([1, 7], (1, 10)), ([2.5, 10], (1, 10)), ([0, 4], (0, 10)), ([0, 10], (0, 10)), ([3, 55], (0, 100))],
)
def test_the_scale_is_the_smallest_common_scale_that_holds_every_score(scores, want):
    assert infer_user_scale(np.array(scores, dtype=float)) == want
    r = _parse("".join(f"i{j}.jpg,{s}\n" for j, s in enumerate(scores)))
    assert r.scale == want and r.scale_origin == "inferred from the scores"


def test_a_stated_scale_wins_and_the_given_one_wins_over_the_files():
    text = "# scale: 0-10\na.jpg,4\nb.jpg,2\n"
    assert _parse(text).scale == (0, 10) and _parse(text).scale_origin == "stated in the file"
    assert _parse(text, (1, 100)).scale == (1, 100) and _parse(text, (1, 100)).scale_origin == "given"


@pytest.mark.parametrize("text, want", [("1-5", (1, 5)), ("0 - 100", (0, 100)), ("0.5..5", (0.5, 5)), ("-3:3", (-3, 3)), ("1 to 7", (1, 7))])
def test_scales_are_written_lo_hi(text, want):
    assert parse_scale(text) == want


@pytest.mark.parametrize("text", ["5", "five", "5-1", "3-3", ""])
def test_a_bad_scale_says_how_to_write_one(text):
    with pytest.raises(ValueError, match="scale"):
        parse_scale(text)


def test_user_scales_map_onto_the_ten_template():
    s = user_scale(0, 100)
    assert s.template == SCALES[USER_SOURCE].template == "ten"
    assert s.to_template(0) == 1 and s.to_template(100) == 10 and s.from_template(s.to_template(37.0)) == pytest.approx(37.0)


@pytest.mark.parametrize(
    "text, scale, message",
    [
        ("a.jpg,4\nb.jpg,4,7\n", None, "me.csv, row 2: expected 2 columns (image path, score), found 3"),
        ("a.jpg,4\nb.jpg\n", None, "me.csv, row 2: expected 2 columns (image path, score), found 1 (the columns are separated by commas)"),
        ("a.jpg,4\nb.jpg;3\n", None, "me.csv, row 2: expected 2 columns"),
        ("path,score\na.jpg,good\n", None, "me.csv, row 2, column 2 (score): 'good' is not a number"),
        ("a.jpg,good\n", None, "me.csv, row 1, column 2 (score): 'good' is not a number"),  # an image path: not a header
        ("a.jpg,4\nb.jpg,nan\n", None, "me.csv, row 2, column 2 (score): 'nan' is not a finite number"),
        ("a.jpg,4\n,3\n", None, "me.csv, row 2, column 1 (image path): empty"),
        ("a.jpg,4\nb.jpg,3\na.jpg,2\n", None, "me.csv, row 3, column 1 (image path): 'a.jpg' is already rated in row 1"),
        ("a.jpg,4\nb.jpg,6\nc.jpg,7\n", (1, 5), "me.csv, row 2, column 2 (score): 6 is outside the scale 1-5 (given) (and 1 more rows)"),
        ("# scale: 1-5\na.jpg,0\n", None, "me.csv, row 2, column 2 (score): 0 is outside the scale 1-5 (stated in the file)"),
        ("# scale: 1-5\n# scale: 1-10\na.jpg,3\n", None, "me.csv, row 2: a second '# scale:' line"),
        ("# scale: high\na.jpg,3\n", None, "me.csv, row 1: 'high' is not a scale"),
        ("a.jpg,-2\nb.jpg,4\n", None, "me.csv: the scores run from -2 to 4, which none of the common scales (1-5, 1-10, 0-10, 0-100) holds"),
        ("path,score\n# nothing yet\n", None, "me.csv: no ratings"),
        ("", None, "me.csv: no ratings"),
    ],
)
def test_every_bad_row_is_named_by_file_row_and_column(text, scale, message):
    with pytest.raises(RatingsError) as err:
        _parse(text, scale)
    assert str(err.value).startswith(message)


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(RatingsError, match="no such ratings file"):
        read_ratings(tmp_path / "nope.csv")
    with pytest.raises(RatingsError, match="is a folder"):
        read_ratings(tmp_path)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(RatingsError, match="cannot be read as a UTF-8 text file"):
        read_ratings(tmp_path / "bin.csv")


def test_relative_paths_resolve_against_the_files_folder_and_a_bom_is_ignored(tmp_path, monkeypatch):
    (tmp_path / "r.csv").write_bytes("\ufeffpath,score\nsub/a.jpg,3\n".encode())
    monkeypatch.chdir("/")
    assert read_ratings(tmp_path / "r.csv").paths == [tmp_path / "sub" / "a.jpg"]


@pytest.mark.parametrize("name", ["me", "Anna-Lena", "bob_2", "j.doe"])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "a:b", "a/b", "../x", ".hidden", "-x", "a b", "x" * 65])
def test_bad_names(name):
    with pytest.raises(ValueError, match="cannot name a person"):
        check_name(name)


# --- on the smoke project: what any deployed method is handed -------------------------------------


@register("_probe_for_new_people")
class Probe(Method):
    """A deployable method that keeps what it was handed and picks the best expert on the support set."""

    class Options(Method.Options):
        strength: float = 1.0

    deployable = True
    seen: list = []

    def prepare(self, supports, queries, ctx):
        Probe.seen.append(("prepare", list(supports), list(queries)))

    def fit(self, support, ctx):
        Probe.seen.append((support, ctx, self.options.strength))
        r = [np.corrcoef(support.y.numpy(), s)[0, 1] for s in support.expert_scores]
        lam = torch.zeros(len(ctx.experts), len(ctx.task_vectors.meta["names"]))
        lam[int(np.argmax(r))] = 1.0
        return {"lambda": lam, "picked": torch.tensor([int(np.argmax(r))])}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    project = smoke_project(tmp_path_factory)
    with inside(project):
        cat = catalog(project)
        yield project, cat.load("theta0"), cat.load("task_vectors"), cat.load("images"), cat.load("expert_predictions")


def _ratings_file(tmp_path: Path, project: Path, images: pl.DataFrame, expert_predictions: pl.DataFrame, expert: str, n: int):
    """``n`` images rated by ``expert``'s zero-shot opinion on 1-10 (integers), paths relative to the file."""
    probs = expert_predictions.filter(pl.col("expert") == expert).sort("image_id").head(n)
    t = probs.join(images.select("image_id", "path"), on="image_id", maintain_order="left")
    s = np.stack(t["probs"].to_list()) @ np.arange(1, 11)
    y = np.rint(1 + 9 * (s - s.min()) / (s.max() - s.min())).astype(int)
    lines = ["image,score"] + [f"{Path('..') / 'proj' / p},{v}" for p, v in zip(t["path"].to_list(), y)]
    (tmp_path / "proj").symlink_to(project)
    (tmp_path / "ratings").mkdir()
    (tmp_path / "ratings" / "me.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "ratings" / "me.csv", t["image_id"].to_list(), y


def test_any_deployed_method_gets_the_images_experts_features_and_template_scores(smoke, tmp_path):
    project, theta0, tau, images, expert_predictions = smoke
    path, ids, y = _ratings_file(tmp_path, project, images, expert_predictions, "ava", 24)
    ratings = read_ratings(path)
    assert ratings.scale == (1, 10)
    params = PersonalizeParams(methods={"probe": {"method": "_probe_for_new_people"}}, deploy_method="probe")
    Probe.seen.clear()
    person = personalize_new_person(ratings, "me", theta0, tau, params, {"_probe_for_new_people": {"strength": 0.25}, "other": {"x": 1.0}})

    (prepared, (support, ctx, strength)) = Probe.seen
    assert strength == 0.25 and person.chosen == {"strength": 0.25}  # the settings chosen on validation people apply
    assert prepared == ("prepare", [support], [])  # prepare, then fit, as the pipeline calls them
    n, experts = len(ids), tau.meta["sources"]
    assert (support.source, support.rater_id, support.k, support.repeat) == (USER_SOURCE, "me", n, 0)
    assert support.rows.tolist() == list(range(n)) and ctx.images.pixels.shape[0] == n
    assert ctx.images.pixels.shape[-1] == theta0.meta["cache_size"] and ctx.images.crop == theta0.meta["input_size"]
    assert ctx.experts == experts and ctx.features.shape == (n, 1280)
    assert torch.allclose(support.y, torch.as_tensor(y, dtype=torch.float32))  # 1-10 is the template's own range
    # each expert's zero-shot scores: the pipeline's expert predictions of the same images
    tmpl = template_tensor(SCALES[USER_SOURCE].template).numpy().astype(np.float64)
    for i, e in enumerate(experts):
        p = expert_predictions.filter(pl.col("expert") == e).sort("image_id").head(n)
        assert p["image_id"].to_list() == ids
        np.testing.assert_allclose(support.expert_scores[i], np.stack(p["probs"].to_list()) @ tmpl, atol=2e-3)
    assert int(person.bundle[f"probe/k{n}/r0/picked"]) == experts.index("ava")

    assert person.key == "own__me" and person.used == n and person.problems == [] and person.method == "probe"
    assert {parse_state_key(k)[::3] for k in person.bundle.tensors} == {("probe", "lambda"), ("probe", "picked")}
    assert person.bundle.meta | {"names": None} == {
        "sources": experts, "names": None, "deploy_method": "probe", "source": "own", "rater_id": "me",
        "scale": [1.0, 10.0], "ratings_file": str(path), "ratings_used": n,
    }


def test_unreadable_images_are_left_out_and_too_few_or_equal_ratings_refused(smoke, tmp_path):
    project, theta0, tau, images, expert_predictions = smoke
    path, ids, y = _ratings_file(tmp_path, project, images, expert_predictions, "ava", MIN_RATINGS + 1)
    (tmp_path / "ratings" / "broken.jpg").write_text("not an image")
    text = path.read_text() + "missing.jpg,3\nbroken.jpg,4\n"
    path.write_text(text)
    params = PersonalizeParams(methods={"probe": {"method": "_probe_for_new_people"}}, deploy_method="probe")
    person = personalize_new_person(read_ratings(path), "me", theta0, tau, params)
    assert person.used == MIN_RATINGS + 1
    assert [p.split(": ", 1)[0] for p in person.problems] == [f"{path}, row {MIN_RATINGS + 3}, column 1 (image path)",
                                                            f"{path}, row {MIN_RATINGS + 4}, column 1 (image path)"]
    assert "missing.jpg: file not found" in person.problems[0] and "broken.jpg: not a readable image" in person.problems[1]

    lines = text.splitlines()
    path.write_text("\n".join(lines[:3] + lines[-2:]) + "\n")  # 2 readable images, 2 unreadable
    with pytest.raises(RatingsError) as err:
        personalize_new_person(read_ratings(path), "me", theta0, tau, params)
    assert str(err.value).startswith(f"{path}: 2 usable ratings (4 rows, 2 images unreadable); personalizing with 'probe' needs at least {MIN_RATINGS}")
    assert "missing.jpg: file not found" in str(err.value)

    path.write_text("\n".join(f"{line.split(',')[0]},7" for line in lines[1:]) + "\n")
    with pytest.raises(RatingsError, match=r"all 11 usable ratings are the same score \(7\)"):
        personalize_new_person(read_ratings(path), "me", theta0, tau, params)

    Probe.min_support = 50  # a method that needs more than the floor
    try:
        with pytest.raises(RatingsError, match="needs at least 50"):
            personalize_new_person(read_ratings(path), "me", theta0, tau, params)
    finally:
        del Probe.min_support
