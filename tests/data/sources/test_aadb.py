"""AADB adapter: one label file per split and attribute."""

from __future__ import annotations

import pytest

from aestimo.data.sources import read_source
from aestimo.data.sources.aadb import ATTRS, attr_name

SPLIT_IMAGES = {"Train": ["farm1_a.jpg", "farm1_b.jpg"], "Validation": ["farm2_c.jpg"], "Test": ["farm3_d.jpg"]}
SCORES = {"farm1_a.jpg": "0.6", "farm1_b.jpg": "0.25", "farm2_c.jpg": "1.0", "farm3_d.jpg": "0"}


@pytest.fixture
def aadb(newdir, jpeg, text):
    def make(scores=SCORES, train_score_lines=None, images=tuple(SCORES), skip_file=None, image_dir=True):
        root = newdir()
        for split, names in SPLIT_IMAGES.items():
            for attr in ["score", *ATTRS]:
                if (split, attr) == skip_file:
                    continue
                if attr == "score":
                    lines = [f"{n} {scores[n]}" for n in names]
                    if split == "Train" and train_score_lines is not None:
                        lines = train_score_lines
                else:
                    lines = [f"{n}  {0.2 if attr == 'Light' else -0.4}" for n in names]
                text(root / "imgListFiles_label" / f"imgList{split}Regression_{attr}.txt", "\n".join(lines) + "\n")
        if image_dir:
            jpeg(*[root / "datasetImages_originalSize" / n for n in images])
        return root

    return make


def test_attr_names():
    assert attr_name("BalacingElements") == "attr_balancing_elements"
    assert attr_name("DoF") == "attr_dof" and attr_name("RuleOfThirds") == "attr_rule_of_thirds"


def test_tables(aadb):
    root = aadb()
    t = read_source("aadb", root)
    assert t.images["image_id"].to_list() == [f"aadb:{n}" for n in SCORES]
    assert t.images["path"][0] == str(root / "datasetImages_originalSize" / "farm1_a.jpg")
    g = t.generic_scores
    assert g["mean"].to_list() == [0.6, 0.25, 1.0, 0.0]
    assert g["mean_template"].to_list() == pytest.approx([1 + 0.6 * 9, 1 + 0.25 * 9, 10, 1])
    assert g["attr_light"].to_list() == [0.2] * 4 and g["attr_balancing_elements"].to_list() == [-0.4] * 4
    assert len([c for c in g.columns if c.startswith("attr_")]) == 11
    assert t.official_splits["split"].to_list() == ["train", "train", "val", "test"]


def test_errors(aadb, raises_at):
    raises_at(lambda: read_source("aadb", aadb(skip_file=("Test", "Symmetry"))),
              "imgListTestRegression_Symmetry.txt", None, None)
    lines = ["farm1_a.jpg 0.6", "farm1_b.jpg 1.25"]
    raises_at(lambda: read_source("aadb", aadb(train_score_lines=lines)), "imgListTrainRegression_score.txt", 2,
              "score")
    lines = ["farm1_a.jpg 0.6", "farm1_b.jpg 0.3", "farm2_c.jpg 0.5"]  # also in Validation
    raises_at(lambda: read_source("aadb", aadb(train_score_lines=lines)), "imgListValidationRegression_score.txt",
              1, "imageName")
    raises_at(lambda: read_source("aadb", aadb(images=("farm1_a.jpg", "farm1_b.jpg", "farm2_c.jpg"))),
              "imgListTestRegression_score.txt", 1, "imageName")
    raises_at(lambda: read_source("aadb", aadb(image_dir=False)), "datasetImages_originalSize", None, None)
    t = read_source("aadb", aadb(image_dir=False), require_images=False)
    assert t.images.height == 4


def test_drop_mode(aadb):
    lines = ["farm1_a.jpg 0.6", "farm1_b.jpg x", "farm9_z.jpg 0.5"]  # farm9_z has no image
    t = read_source("aadb", aadb(train_score_lines=lines), on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [2, 3] and t.images.height == 3


MODES = ["error", "drop"]
ATTR_FILE = "imgListValidationRegression_Light.txt"


def _write(root, name, content):
    (root / "imgListFiles_label" / name).write_text(content, encoding="utf-8")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "content, row, column",
    [
        ("farm2_c.jpg,0.2\n", 1, None),  # wrong delimiter
        ("other.jpg 0.2\n", None, "imageName"),  # names no image of the split
        ("farm2_c.jpg high\n", 1, "Light"),  # no readable value
    ],
)
def test_garbage_attribute_file_raises_in_both_modes(aadb, raises_at, mode, content, row, column):
    """A broken attribute file never silently empties the attribute."""
    root = aadb()
    _write(root, ATTR_FILE, content)
    raises_at(lambda: read_source("aadb", root, on_bad_rows=mode), ATTR_FILE, row, column)


def test_repeat_across_splits_names_the_first_occurrence(aadb, raises_at):
    lines = ["farm1_a.jpg 0.6", "farm1_b.jpg 0.3", "farm2_c.jpg 0.5"]
    e = raises_at(lambda: read_source("aadb", aadb(train_score_lines=lines)),
                  "imgListValidationRegression_score.txt", 1, "imageName")
    assert "first in imgListTrainRegression_score.txt, row 3" in str(e)


@pytest.mark.parametrize("content", [b"", b"farm1_b.jpg 0\n"])
def test_image_file_that_is_not_an_image(aadb, raises_at, content):
    root = aadb()
    (root / "datasetImages_originalSize" / "farm1_b.jpg").write_bytes(content)
    raises_at(lambda: read_source("aadb", root), "imgListTrainRegression_score.txt", 2, "imageName")
    t = read_source("aadb", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(2, "imageName")] and t.images.height == 3


def test_unreadable_image_folder_names_the_folder(aadb, raises_at, monkeypatch):
    import os

    root = aadb()
    real = os.scandir

    def scandir(path="."):
        if "datasetImages_originalSize" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    e = raises_at(lambda: read_source("aadb", root), "datasetImages_originalSize", None, None)
    assert "permission denied" in str(e)
