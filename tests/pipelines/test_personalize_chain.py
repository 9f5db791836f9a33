"""The whole main job (`kedro run --pipeline personalize --env smoke`) in a temporary
copy of the project, then the scoring CLI and API on what it wrote."""

import math
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from aestimo import experts
from aestimo.console import main as cli
from aestimo.models.scorer import template_tensor
from aestimo.parallel import Images, Job, run_jobs
from aestimo.personalize import PersonalizeConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "conf", tmp / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp / "conf" / "local").mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, tmp / name)
    (tmp / "src").mkdir()  # the package itself is installed; Kedro only wants the folder
    cwd = os.getcwd()
    os.chdir(tmp)  # parameters name paths relative to the project root, as `kedro run` sees them
    try:
        bootstrap_project(tmp)
        with KedroSession.create(project_path=tmp, env="smoke") as session:
            session.run(pipeline_name="personalize")
        with KedroSession.create(project_path=tmp, env="smoke") as session:
            catalog = session.load_context().catalog
        yield tmp, catalog
    finally:
        os.chdir(cwd)


def test_chain_writes_every_stage(project):
    tmp, catalog = project
    data = tmp / "data" / "smoke"
    assert (data / "08_reporting" / "ingest" / "ingest_report.md").exists()
    metrics = catalog.load("expert_metrics")
    assert set(metrics["expert"]) >= {"ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq", "constant"}
    tv = catalog.load("task_vectors")
    assert tv.meta["sources"] == ["ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq"]
    summary = catalog.load("personalization_summary")
    assert {"layerwise_rank", "layeragnostic_rank", "layerwise_mse", "zero_shot_ensemble", "oracle"} <= set(summary["method"])
    per = catalog.load("personalization_metrics")
    assert per.filter(pl.col("method") == "layerwise_rank").height == 2 * 2 * 2  # 2 sources x 2 people x 2 repeats
    comp = catalog.load("personalization_comparisons").filter(pl.col("versus") == "layeragnostic_rank")
    assert comp["k"].to_list() == [10] and comp["runs"].to_list() == [8]  # paired over every run (2 sources x 2 people x 2 repeats)
    coeffs = catalog.load("user_coefficients")
    assert len(coeffs) == 4
    bundle = next(iter(coeffs.values()))()
    assert {"layerwise_rank/k10/r0", "layeragnostic_rank/k10/r1"} <= set(bundle.tensors)
    assert bundle["layerwise_rank/k10/r0"].shape == (6, len(tv.meta["names"]))
    assert (data / "08_reporting" / "personalization" / "summary.png").exists()


def test_one_hot_merge_reproduces_the_trained_experts(project):
    _, catalog = project
    theta0, tv, cache = catalog.load("theta0"), catalog.load("task_vectors"), catalog.load("image_cache")
    preds = catalog.load("expert_predictions")
    splits = catalog.load("generic_splits")
    read_downstream = splits.filter(pl.col("split").is_in(["test", "personal"]))["image_id"]
    predicted = set(preds["image_id"].to_list())
    assert predicted == set(read_downstream.to_list())  # no training image scored
    merged = experts.merged_scorer(theta0, tv)
    from aestimo.imagecache import center_view, to_float

    rows = [i for i, iid in enumerate(cache.meta["image_ids"]) if iid in predicted][:8]
    x = to_float(center_view(cache["pixels"][rows], theta0.meta["input_size"]), *experts.norm_of(theta0))
    ids = [cache.meta["image_ids"][i] for i in rows]
    n, L = merged.shape
    for i, source in enumerate(tv.meta["sources"]):
        lam = torch.zeros(n, L)
        lam[i] = 1
        with torch.no_grad():
            got = merged(x, lam).numpy()
        want = preds.filter(pl.col("expert") == source).join(pl.DataFrame({"image_id": ids}), on="image_id", how="semi")
        want = np.stack(want.sort(pl.col("image_id").replace({v: j for j, v in enumerate(ids)}).cast(int))["probs"].to_list())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_score_cli_scores_a_folder_for_a_person(project, tmp_path, capsys):
    tmp, catalog = project
    key = sorted(catalog.load("user_coefficients"))[0]
    user = key.replace("__", ":", 1)
    images = catalog.load("images")
    folder = tmp_path / "album"
    folder.mkdir()
    for p in images["path"].head(3).to_list():
        shutil.copy(tmp / p, folder / Path(p).name)
    (folder / "notes.jpg").write_text("not an image")
    out = tmp_path / "scores.csv"
    code = cli(["score", "--user", user, str(folder), "--project", str(tmp), "--env", "smoke", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "notes.jpg: not a readable image" in err  # the bad file is reported ...
    table = pl.read_csv(out)
    assert table.height == 3 and table["score"].is_between(1, 5).all()  # ... and the others scored

    assert cli(["score", "--user", "flickr_aes:NOBODY", str(folder), "--project", str(tmp), "--env", "smoke"]) == 2
    assert "unknown person" in capsys.readouterr().err
    cli(["score", "--user", user, str(tmp_path / "missing"), "--project", str(tmp), "--env", "smoke"])
    assert "no such file or folder" in capsys.readouterr().err


def test_score_api_matches_personalized_predictions(project):
    import aestimo

    tmp, catalog = project
    key = sorted(catalog.load("user_coefficients"))[0]
    images = catalog.load("images").head(2)
    result = aestimo.score([str(tmp / p) for p in images["path"]], user=key.replace("__", ":", 1), project_path=tmp, env="smoke")
    assert result.errors == [] and result.table.height == 2
    assert np.isfinite(result.table["score"].to_numpy()).all()


def test_worker_processes_give_the_in_process_numbers(project):
    """Runs shared across spawned workers (one thread each) equal the same runs done here."""
    _, catalog = project
    theta0, tau, cache = catalog.load("theta0"), catalog.load("task_vectors"), catalog.load("image_cache")
    images = Images(cache["pixels"], theta0.meta["input_size"], *experts.norm_of(theta0))
    n = len(tau.meta["sources"])
    rng = np.random.default_rng(0)
    jobs = []
    for j, layerwise in enumerate([True, False, True]):
        rows = torch.as_tensor(rng.choice(len(cache["pixels"]), 14, replace=False))
        y = torch.as_tensor(rng.uniform(1, 10, 10), dtype=torch.float32)
        cfg = PersonalizeConfig(steps=3, batch_size=8, layerwise=layerwise)
        jobs.append(Job(f"p{j}", rows[:10], y, rng.normal(size=(n, 10)), j, rows[10:], template_tensor(np.arange(1.0, 11.0)), cfg))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = run_jobs(theta0, tau, images, jobs, workers=1)
    finally:
        torch.set_num_threads(threads)
    pooled = run_jobs(theta0, tau, images, jobs, workers=2)
    for a, b in zip(here, pooled):
        assert torch.equal(a.lam, b.lam) and torch.equal(a.scores, b.scores)
    assert not torch.equal(here[0].lam, here[2].lam)  # the jobs differ, so equality above means something


def _experiment(name: str):
    """A script of experiments/ (not a package) loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_more_people_experiment_runs_the_personalization_nodes(project, capsys):
    script = _experiment("compare_on_more_people")
    tmp, _ = project
    script.main(["--people", "1", "--k", "10", "--steps", "2", "--workers", "1", "--project", str(tmp), "--env", "smoke"])
    out = capsys.readouterr().out
    assert "k = 10, 1 people per source, 1 repeat(s), 2 steps" in out
    assert "layeragnostic_rank" in out and "wilcoxon_p" in out


def test_stage2_lr_sweep_sets_the_rate_where_the_environment_keeps_experts(tmp_path):
    import yaml

    script = _experiment("stage2_lr_sweep")
    with_experts, empty = tmp_path / "smoke", tmp_path / "local"
    with_experts.mkdir(), empty.mkdir()
    (with_experts / "parameters_experts.yml").write_text("experts:\n  seed: 3\n  stage2: {steps: 6}\n")
    (with_experts / "parameters_ingest.yml").write_text("ingest: {seed: 1}\n")
    script._set_rate(with_experts, 3e-4)
    script._set_rate(empty, 1e-4)
    kept = yaml.safe_load((with_experts / "parameters_experts.yml").read_text())["experts"]
    assert kept == {"seed": 3, "stage2": {"steps": 6, "lr_backbone": [3e-4, 3e-5]}}
    assert yaml.safe_load((with_experts / "parameters_ingest.yml").read_text()) == {"ingest": {"seed": 1}}
    assert [f.name for f in empty.iterdir()] == ["parameters_experts.yml"]
    assert yaml.safe_load((empty / "parameters_experts.yml").read_text()) == {"experts": {"stage2": {"lr_backbone": [1e-4, 1e-5]}}}


def test_stage2_lr_sweep_trains_copies_and_leaves_the_project_alone(project, tmp_path, capsys):
    script = _experiment("stage2_lr_sweep")
    tmp, catalog = project
    before = catalog.load("ava.stage2_history")
    script.main(["--lr", "1e-5", "1e-3", "--project", str(tmp), "--env", "smoke", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "lowest validation loss (geometric mean over sources): lr_backbone" in out
    low, high = (script.read_expert_results(tmp_path / name, "smoke") for name in ("lr_1e-05", "lr_0.001"))
    assert low["source"].to_list() == ["ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq"]
    assert (low["val_loss"] != high["val_loss"]).any()  # the override reached stage 2
    assert catalog.load("ava.stage2_history").equals(before)  # the project's own experts are untouched
    table, best = script.pick({1e-5: low, 1e-3: high})
    assert table["val_loss_ratio"][0] == 1.0 and best in (1e-5, 1e-3)
    ratio = math.exp(sum(math.log(h / l) for h, l in zip(high["val_loss"], low["val_loss"])) / low.height)
    assert table["val_loss_ratio"][1] == pytest.approx(ratio)
    assert best == (1e-3 if ratio < 1 else 1e-5)
