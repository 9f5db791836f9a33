"""REAL-CUR and AADB people, held out as conf/base + conf/smoke configure them, join the few-shot
splits and never any expert's splits (the ingest nodes on the smoke world, without Kedro)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from aestimo.data.world import generate_world, smoke_config
from aestimo.pipelines.ingest import nodes

CONF = Path(__file__).resolve().parents[2] / "conf"
NEW = ("real_cur", "aadb")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _conf(env: str, name: str) -> dict:
    return yaml.safe_load((CONF / env / name).read_text())


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("people_sources") / "synthetic"
    generate_world(root, smoke_config())
    params = _merge(_conf("base", "parameters_ingest.yml")["ingest"], _conf("smoke", "parameters_ingest.yml")["ingest"])
    params["world_root"] = str(root)
    params["world"] = {"seed": smoke_config().seed, "preset": "smoke"}
    for kind, src in params["sources"].items():
        src["root"] = str(root / kind)
    images, ratings, _, _, official, dropped = nodes.read_sources(params, {})
    people = nodes.select_test_people(ratings, params)
    gsplits = nodes.make_generic_splits(images, ratings, official, people, params)
    few, skipped = nodes.make_fewshot_splits(ratings, people, params)
    return params, images, ratings, people, gsplits, few, skipped, dropped


def test_configured_without_an_expert():
    assert not set(NEW) & set(_conf("base", "parameters_experts.yml")["experts"]["sources"])
    assert set(NEW) <= set(_conf("base", "parameters_ingest.yml")["ingest"]["sources"])


def test_held_out_people_join_the_fewshot_splits(ingested):
    params, _, ratings, people, _, few, skipped, dropped = ingested
    assert dropped.height == 0 and skipped.height == 0
    cfg = smoke_config()
    held = {kind: set(people.filter(pl.col("source") == kind)["rater_id"]) for kind in NEW}
    assert len(held["real_cur"]) == cfg.real_cur_users  # every REAL-CUR user
    assert len(held["aadb"]) == cfg.aadb_test_raters  # the AADB raters with >= min_ratings
    n = ratings.filter(pl.col("source") == "aadb").group_by("rater_id").len()
    assert held["aadb"] == set(n.filter(pl.col("len") >= params["sources"]["aadb"]["test_users"]["min_ratings"])["rater_id"])
    for kind in NEW:
        f = few.filter(pl.col("source") == kind)
        assert set(f["rater_id"]) == held[kind]
        assert set(f["k"]) == set(params["fewshot"]["ks"]) and f["repeat"].n_unique() == params["fewshot"]["repeats"]
        per = f.group_by("rater_id", "repeat").agg((pl.col("role") == "query").sum().alias("query"))
        assert (per["query"] >= params["fewshot"]["min_query"]).all()


def test_their_images_are_personal_never_in_expert_splits(ingested):
    _, images, ratings, people, gsplits, few, _, _ = ingested
    for kind in NEW:
        assert set(gsplits.filter(pl.col("source") == kind)["split"]) == {"personal"}
        assert gsplits.filter(pl.col("source") == kind).height == images.filter(pl.col("source") == kind).height
    theirs = ratings.join(people.filter(pl.col("source").is_in(NEW)), on=["source", "rater_id"], how="semi")
    expert_rows = gsplits.filter(pl.col("split").is_in(["train", "val", "test"]))
    assert expert_rows.join(theirs, on="image_id", how="semi").height == 0
    assert few.filter(pl.col("source").is_in(NEW)).join(expert_rows, on="image_id", how="semi").height == 0
    # the six sources keep their experts' train / val / test parts
    for source in ("ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq"):
        assert {"train", "val", "test"} <= set(gsplits.filter(pl.col("source") == source)["split"]), source
