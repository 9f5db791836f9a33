"""The smoke chain with a small randomly initialised ViT as the backbone (`--env smoke_vit`):
ingest, experts, task vectors, the field's models and personalization, in a temporary copy of
the project; then instant and exact λ, and scoring with the CLI from the files it wrote."""

import math

import numpy as np
import polars as pl
import pytest
from PIL import Image

from aestimo.console import main as cli
from tests.kedro_project import catalog, inside, new_project, run

ENV = "smoke_vit"
STAGES = ("ingest", "experts", "task_vectors", "field_models", "personalization")

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = new_project(tmp_path_factory.mktemp("vit_project"))
    with inside(tmp):
        for stage in STAGES:
            run(tmp, stage, env=ENV)
        yield tmp, catalog(tmp, env=ENV)


def test_theta0_is_the_configured_vit(project):
    _, cat = project
    theta0 = cat.load("theta0")
    assert theta0.meta["backbone"] == "vit_tiny_patch16_224"
    assert theta0.meta["model_kwargs"] == {"img_size": 32} and theta0.meta["input_size"] == 32
    assert {"backbone.cls_token", "backbone.pos_embed", "backbone.blocks.11.attn.qkv.weight"} <= set(theta0.tensors)


def test_every_stage_wrote_its_outputs_under_the_envs_root(project):
    tmp, cat = project
    data = tmp / "data" / "smoke_vit"
    assert (data / "08_reporting" / "ingest" / "ingest_report.md").exists()
    assert not (tmp / "data" / "smoke").exists()
    metrics = cat.load("expert_metrics")
    assert set(metrics["expert"]) >= {"ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq"}
    tv = cat.load("task_vectors")
    assert tv.meta["sources"] == ["ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq"]
    assert "backbone.cls_token" in tv.meta["names"] and "backbone.pos_embed" in tv.meta["names"]
    assert cat.load("backbone_features")["features"].shape[1] == 192  # the ViT's width


def test_instant_and_exact_personalization_give_finite_metrics(project):
    _, cat = project
    per = cat.load("personalization_metrics")
    plan = cat.load("personalization_plan")
    sources = plan["source"].n_unique()
    instant = per.filter(pl.col("method") == "instant")
    exact = per.filter(pl.col("method") == "exact")
    assert instant.height == plan.height and exact.height == sources
    for rows in (instant, exact):
        for column in ("srocc", "plcc"):
            values = rows[column].to_numpy()
            assert np.isfinite(values).all(), column
    summary = cat.load("personalization_summary")
    assert {"instant", "exact", "init_only"} <= set(summary["method"])
    coeffs = cat.load("user_coefficients")
    bundle = coeffs[sorted(coeffs)[0]]()
    lam = bundle["instant/k10/r0/lambda"]
    assert lam.shape == (6, len(cat.load("task_vectors").meta["names"])) and bool(lam.isfinite().all())


def test_cli_scores_a_photo_with_a_vit_person(project, tmp_path):
    tmp, _ = project

    models = tmp / "data" / "smoke_vit" / "06_models"
    person = sorted((models / "user_coefficients").glob("*.safetensors"))[0]
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 64, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    out = tmp_path / "scores.csv"
    code = cli(["score", "--theta0", str(models / "theta0.safetensors"), "--task-vectors",
                str(models / "task_vectors.safetensors"), "--coefficients", str(person), str(tmp_path / "p.png"),
                "-o", str(out)])
    assert code == 0
    assert math.isfinite(pl.read_csv(out)["score"][0])
