"""`kedro run --pipeline ingest --env smoke` end to end in a temporary copy of the project,
then the same run on corrupted raw files (error mode and drop mode)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from aestimo.data import splits
from aestimo.data.sources.schema import (
    DROPPED_SCHEMA,
    GENERIC_SCORES_SCHEMA,
    IMAGES_SCHEMA,
    RATINGS_SCHEMA,
    USER_PROFILES_SCHEMA,
    RawDataError,
)
from tests.kedro_project import catalog as _catalog
from tests.kedro_project import inside as _inside
from tests.kedro_project import new_project as _new_project
from tests.kedro_project import run

SMOKE = Path("data") / "smoke"
RAW = SMOKE / "01_raw" / "synthetic"
SOURCES = ["aadb", "ava", "flickr_aes", "koniq10k", "para", "real_cur", "spaq", "tad66k"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The ingest pipeline run once (the smoke world is generated once for the module)."""
    tmp = _new_project(tmp_path_factory.mktemp("ingest_project"))
    with _inside(tmp):
        run(tmp, "ingest")
        yield tmp, _catalog(tmp)


@pytest.fixture
def corrupted(project, tmp_path):
    """A second project that reuses the generated raw world (copied) and none of the outputs."""
    src, _ = project
    tmp = _new_project(tmp_path / "corrupted")
    shutil.copytree(src / SMOKE / "01_raw", tmp / SMOKE / "01_raw")
    with _inside(tmp):
        yield tmp


# ----------------------------------------------------------------- a clean run


def test_canonical_tables_have_their_columns(project):
    _, catalog = project
    images = catalog.load("images")
    assert images.columns == list(IMAGES_SCHEMA)
    assert sorted(images["source"].unique()) == SOURCES
    assert images["image_id"].is_unique().all()
    ratings = catalog.load("ratings")
    assert ratings.columns == list(RATINGS_SCHEMA)
    assert ratings["score"].null_count() == 0
    assert ratings.join(images, on="image_id", how="anti").height == 0  # every rated image is known
    generic = catalog.load("generic_scores")
    assert generic.columns[: len(GENERIC_SCORES_SCHEMA)] == list(GENERIC_SCORES_SCHEMA)
    assert all(c.startswith("attr_") for c in generic.columns[len(GENERIC_SCORES_SCHEMA):])
    profiles = catalog.load("user_profiles")
    assert profiles.columns == list(USER_PROFILES_SCHEMA)
    assert profiles.height > 0
    assert catalog.load("ingest_dropped_rows").columns == list(DROPPED_SCHEMA)
    assert catalog.load("ingest_dropped_rows").height == 0
    assert catalog.load("generic_splits").columns == list(splits.GENERIC_SPLITS_SCHEMA)
    assert catalog.load("test_people").columns == list(splits.TEST_PEOPLE_SCHEMA)
    assert catalog.load("fewshot_splits").columns == list(splits.FEWSHOT_SCHEMA)
    for name in ("world_image_latents", "world_raters", "world_utilities"):
        assert catalog.load(name).height > 0


def test_held_out_people_images_are_personal(project):
    _, catalog = project
    ratings, people = catalog.load("ratings"), catalog.load("test_people")
    gsplits = catalog.load("generic_splits")
    assert set(people["source"]) == {"flickr_aes", "para", "real_cur", "aadb"}
    by = dict(people.select("source", "selected_by").unique().iter_rows())
    assert by == {"flickr_aes": "list", "para": "list", "real_cur": "rule", "aadb": "rule"}  # lists ship with 2
    theirs = ratings.join(people, on=["source", "rater_id"], how="semi")["image_id"].unique()
    assert theirs.len() > 0
    labelled = gsplits.filter(pl.col("image_id").is_in(theirs.implode()))
    assert labelled.height == theirs.len()
    assert set(labelled["split"]) == {"personal"}
    assert gsplits["image_id"].is_unique().all()
    assert gsplits.height == catalog.load("images").height
    # every source keeps a train, val and test part for its expert (PARA's is drawn from train)
    for source, parts in gsplits.filter(pl.col("split") != "personal").group_by("source").agg(pl.col("split")).iter_rows():
        assert set(parts) == {"train", "val", "test"}, source
    # the people sources have no expert: every image is a held-out person's
    assert set(gsplits.filter(pl.col("source").is_in(["real_cur", "aadb"]))["split"]) == {"personal"}


def test_fewshot_splits_per_person_and_repeat(project):
    _, catalog = project
    few, people = catalog.load("fewshot_splits"), catalog.load("test_people")
    k, repeats = 10, 2  # conf/smoke/parameters_ingest.yml
    assert catalog.load("fewshot_skipped").height == 0
    assert few.select("source", "rater_id").unique().sort("source", "rater_id").equals(
        people.select("source", "rater_id").sort("source", "rater_id"))
    per = few.group_by("source", "rater_id", "k", "repeat").agg(
        (pl.col("role") == "support").sum().alias("support"),
        (pl.col("role") == "query").sum().alias("query"),
        pl.col("image_id").n_unique().alias("distinct"),
        pl.len().alias("rows"),
    )
    assert per.height == people.height * repeats
    assert set(per["k"]) == {k}
    assert (per["support"] == k).all()
    assert (per["query"] >= 10).all()
    assert (per["distinct"] == per["rows"]).all()
    ratings = catalog.load("ratings").join(people, on=["source", "rater_id"], how="semi")
    n = ratings.group_by("source", "rater_id").len()
    assert per.join(n, on=["source", "rater_id"]).filter(pl.col("rows") != pl.col("len")).height == 0


def test_report_histogram_and_world_statistics(project):
    tmp, catalog = project
    report_dir = tmp / SMOKE / "08_reporting" / "ingest"
    png = report_dir / "score_histograms.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = catalog.load("ingest_report")
    assert report == (report_dir / "ingest_report.md").read_text()
    assert report.startswith("# Ingest report") and "## Counts per source" in report
    counts = catalog.load("ingest_counts")
    assert counts["source"].to_list() == SOURCES
    assert (counts["dropped_rows"] == 0).all()
    assert counts.filter(pl.col("source") == "para")["held_out_people"].item() > 0
    stats = catalog.load("world_statistics")
    srocc = stats.filter(pl.col("name") == "test_user_srocc_vs_utility")
    assert sorted(srocc["source"]) == ["flickr_aes", "para"]
    assert srocc["ok"].all(), srocc
    assert catalog.load("world_manifest")["synthetic"] is True


# ----------------------------------------------------------------- corrupted raw files


def _corrupt_cell(path: Path, line: int, column: str, value: str) -> None:
    lines = path.read_text().split("\n")
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines))


def test_non_numeric_score_stops_the_run_naming_file_row_column(corrupted):
    para = corrupted / RAW / "para" / "annotation" / "PARA-Images.csv"
    _corrupt_cell(para, 5, "aestheticScore", "good")
    with pytest.raises(RawDataError) as err:
        run(corrupted, "ingest")
    e = err.value
    assert (e.file, e.row, e.column) == (str(RAW / "para" / "annotation" / "PARA-Images.csv"), 5, "aestheticScore")
    assert "PARA-Images.csv, row 5, column 'aestheticScore'" in str(e)
    assert "'good' is not a number" in str(e)
    assert not (corrupted / SMOKE / "03_primary" / "ratings.parquet").exists()


def test_short_ava_row_stops_the_run_naming_file_and_row(corrupted):
    ava = corrupted / RAW / "ava" / "AVA.txt"
    lines = ava.read_text().split("\n")
    lines[2] = " ".join(lines[2].split()[:14])  # 14 of the 15 columns
    ava.write_text("\n".join(lines))
    with pytest.raises(RawDataError) as err:
        run(corrupted, "ingest")
    assert err.value.file.endswith("AVA.txt") and err.value.row == 3
    assert "AVA.txt, row 3" in str(err.value)


def test_drop_mode_drops_and_counts_the_bad_row(corrupted):
    para = corrupted / RAW / "para" / "annotation" / "PARA-Images.csv"
    n_rows = len(para.read_text().strip().split("\n")) - 1
    _corrupt_cell(para, 5, "aestheticScore", "good")
    run(corrupted, "ingest", runtime_params={"ingest": {"on_bad_rows": "drop"}})
    catalog = _catalog(corrupted)
    dropped = catalog.load("ingest_dropped_rows")
    assert dropped.select("source", "row", "column").rows() == [("para", 5, "aestheticScore")]
    assert dropped["file"].item().endswith("PARA-Images.csv")
    counts = catalog.load("ingest_counts")
    assert dict(counts.select("source", "dropped_rows").iter_rows()) == {s: int(s == "para") for s in SOURCES}
    ratings = catalog.load("ratings").filter(pl.col("source") == "para")
    assert ratings.height == n_rows - 1
    assert "| para | 110 | 742 |" in catalog.load("ingest_report")
