"""SPAQ adapter: xlsx annotations and scene labels."""

from __future__ import annotations

import openpyxl
import pytest

from aestimo.data.sources import read_source

HEAD = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
ROWS = [["00001.jpg", 42.5, 60, 50, 40, 30, 20], ["00002.jpg", 80, 10, 20, 30, 40, 50]]
FILE = "MOS and Image attribute scores.xlsx"


def xlsx(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)


@pytest.fixture
def spaq(newdir, jpeg):
    def make(rows=ROWS, head=HEAD, scenes=(["Image name", "Scene category"], ["00001.jpg", "Landscape"]),
             images=("00001.jpg", "00002.jpg")):
        root = newdir()
        xlsx(root / "Annotations" / FILE, [head, *rows])
        if scenes is not None:
            xlsx(root / "Annotations" / "Scene category labels.xlsx", scenes)
        jpeg(*[root / "TestImage" / i for i in images])
        return root

    return make


def test_tables(spaq):
    root = spaq()
    t = read_source("spaq", root)
    assert t.images["image_id"].to_list() == ["spaq:00001.jpg", "spaq:00002.jpg"]
    assert t.images["path"][1] == str(root / "TestImage" / "00002.jpg")
    assert t.images["theme"].to_list() == ["Landscape", None]
    g = t.generic_scores
    assert g["mean"].to_list() == [42.5, 80]
    assert g["mean_template"].to_list() == pytest.approx([1 + 42.5 * 0.09, 1 + 80 * 0.09])
    assert g["attr_brightness"].to_list() == [60, 10] and g["attr_sharpness"].to_list() == [20, 50]
    assert {"attr_colorfulness", "attr_contrast", "attr_noisiness"} <= set(g.columns)
    assert t.ratings["rater_id"].null_count() == 2


def test_one_hot_scenes(spaq):
    scenes = (["Image name", "Animal", "Human"], ["00001.jpg", 1, 0], ["00002.jpg", 1, 1])
    t = read_source("spaq", spaq(scenes=scenes))
    assert t.images["theme"].to_list() == ["Animal", "Animal|Human"]


def test_errors(spaq, raises_at):
    rows = [ROWS[0], ["00002.jpg", "n/a", 10, 20, 30, 40, 50]]
    raises_at(lambda: read_source("spaq", spaq(rows=rows)), FILE, 3, "MOS")
    rows = [ROWS[0], ["00002.jpg", 80, 10, 20, 130, 40, 50]]
    raises_at(lambda: read_source("spaq", spaq(rows=rows)), FILE, 3, "Contrast")
    raises_at(lambda: read_source("spaq", spaq(rows=[ROWS[0], ROWS[0]])), FILE, 3, "Image name")
    rows = [ROWS[0], [], ["00002.jpg", 80, 10, 20, 30, 40, "x"]]  # an empty sheet row keeps its number
    raises_at(lambda: read_source("spaq", spaq(rows=rows)), FILE, 4, "Sharpness")
    raises_at(lambda: read_source("spaq", spaq(head=HEAD[:-1] + ["Sharp"])), FILE, 1, "Sharpness")
    raises_at(lambda: read_source("spaq", spaq(images=("00002.jpg",))), FILE, 2, "Image name")


def test_drop_mode(spaq):
    rows = [*ROWS, ["00003.jpg", -1, 1, 1, 1, 1, 1]]
    t = read_source("spaq", spaq(rows=rows, images=("00001.jpg", "00002.jpg", "00003.jpg")), on_bad_rows="drop")
    assert t.dropped["row"].to_list() == [4] and t.images.height == 2


MODES = ["error", "drop"]


@pytest.mark.parametrize("mode", MODES)
def test_repeated_header_name_names_the_file(spaq, raises_at, mode):
    head = HEAD[:-1] + ["MOS"]
    raises_at(lambda: read_source("spaq", spaq(head=head), on_bad_rows=mode), FILE, 1, "MOS")


def test_header_below_empty_rows_is_named_at_its_row(spaq, raises_at, newdir):
    root = spaq()
    xlsx(root / "Annotations" / FILE, [[], [], HEAD[:-1] + ["Sharp"], *ROWS])
    raises_at(lambda: read_source("spaq", root), FILE, 3, "Sharpness")


def test_empty_cell_says_empty(spaq, raises_at):
    rows = [ROWS[0], ["00002.jpg", None, 10, 20, 30, 40, 50]]
    e = raises_at(lambda: read_source("spaq", spaq(rows=rows)), FILE, 3, "MOS")
    assert "MOS is empty" in str(e) and "None" not in str(e)


@pytest.mark.parametrize("mode", MODES)
def test_scene_workbook_naming_no_image_raises(spaq, raises_at, mode):
    scenes = (["Image name", "Scene category"], ["99999.jpg", "Landscape"])
    raises_at(lambda: read_source("spaq", spaq(scenes=scenes), on_bad_rows=mode), "Scene category labels.xlsx",
              None, "Image name")


@pytest.mark.parametrize("content", [b"", b"Image name,MOS\n"])
def test_image_file_that_is_not_an_image(spaq, raises_at, content):
    root = spaq()
    (root / "TestImage" / "00002.jpg").write_bytes(content)
    raises_at(lambda: read_source("spaq", root), FILE, 3, "Image name")
    t = read_source("spaq", root, on_bad_rows="drop")
    assert t.dropped.select("row", "column").rows() == [(3, "Image name")] and t.images.height == 1
