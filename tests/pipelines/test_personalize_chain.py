"""The whole main job (`kedro run --pipeline personalize --env smoke`) in a temporary
copy of the project, then the scoring CLI and API on what it wrote."""

import math
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from aestimo.console import main as cli
from aestimo.data.images import CachedImages
from aestimo.data.scales import SCALES
from aestimo.models.theta0 import normalisation
from aestimo.personalization import Context, Query, Support
from aestimo.personalization.running.keys import person_key, split_person_key, state_key
from aestimo.personalization.methods.instant import Instant, InstantOptions
from aestimo.personalization.running.cluster import Cluster, shared_out
from aestimo.personalization.running.jobs import Job, JobFailed, prepare, run_job, run_jobs
from aestimo.personalization.methods.task_vectors import LambdaOptions, TaskVectors
from tests.kedro_project import ROOT, catalog, inside, new_project, run


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = new_project(tmp_path_factory.mktemp("project"))
    with inside(tmp):
        run(tmp, "personalize")
        yield tmp, catalog(tmp)


def _context(catalog) -> Context:
    theta0, tau, cache = catalog.load("theta0"), catalog.load("task_vectors"), catalog.load("image_cache")
    images = CachedImages(cache["pixels"], theta0.meta["input_size"], *normalisation(theta0))
    return Context(images, theta0, tau, list(tau.meta["sources"]))


def test_chain_writes_every_stage(project):
    tmp, catalog = project
    data = tmp / "data" / "smoke"
    assert (data / "08_reporting" / "ingest" / "ingest_report.md").exists()
    metrics = catalog.load("expert_metrics")
    assert set(metrics["expert"]) >= {"ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq", "constant"}
    tv = catalog.load("task_vectors")
    assert tv.meta["sources"] == ["ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq"]
    summary = catalog.load("personalization_summary")
    assert {"instant", "exact", "hybrid", "init_only", "output_mix", "linear_probe", "zero_shot_ensemble",
            "noise_ceiling", "mixing_ceiling"} <= set(summary["method"])
    plan = catalog.load("personalization_plan")
    sources, people = plan["source"].n_unique(), plan.select("source", "rater_id").n_unique()
    per = catalog.load("personalization_metrics")
    assert per.filter(pl.col("method") == "instant").height == plan.height  # every planned person x repeat
    assert per.filter(pl.col("method") == "exact").height == sources  # the sample: one person per source, one repeat
    rows = summary.filter(pl.col("method").is_in(["instant", "exact"])).sort("method")
    assert rows["people"].to_list() == [sources, people]  # the summary says how many people each row has
    comp = catalog.load("personalization_comparisons").filter(pl.col("versus") == "init_only")
    assert comp["k"].to_list() == [10] and comp["people"].to_list() == [people]  # paired over people, repeats averaged first
    assert catalog.load("personalization_comparisons").filter(pl.col("versus") == "exact")["people"].to_list() == [sources]
    coeffs = catalog.load("user_coefficients")
    assert len(coeffs) == people
    bundle = coeffs[sorted(coeffs)[0]]()
    assert {"instant/k10/r0/lambda", "init_only/k10/r1/lambda"} <= set(bundle.tensors)
    assert bundle["instant/k10/r0/lambda"].shape == (6, len(tv.meta["names"]))
    assert bundle["best_expert_on_support/k10/r0/expert"].item() in range(6)
    timings = catalog.load("personalization_timings")
    assert timings.filter(pl.col("method") == "instant")["prepare_seconds"].sum() > 0  # the shared feature pass is counted
    assert (timings["score_seconds"] >= 0).all() and timings.filter(pl.col("method") == "instant")["score_seconds"].sum() > 0
    for png in ("summary.png", "gains.png", "cost.png"):
        assert (data / "08_reporting" / "personalization" / png).exists()


def test_chain_runs_the_long_tail_stage_and_the_fields_methods(project):
    tmp, catalog = project
    plan = catalog.load("personalization_plan")
    people = plan.select("source", "rater_id").n_unique()
    # experts: plain and self-trained on every expert's own test split, per segment; the eight-way ablation
    lt = catalog.load("long_tail_metrics")
    assert set(lt["variant"]) == {"plain", "self_trained"} and set(lt["segment"]) == {"all", "low", "middle", "high"}
    assert set(lt["expert"]) == set(catalog.load("task_vectors").meta["sources"])
    ablation = catalog.load("long_tail_ablation")
    assert ablation.height == 9 and ablation.select("tfa", "flsa", "apds").unique().height == 8  # plain and "round: none" are both all-off
    st_tv = catalog.load("self_trained_task_vectors")
    assert st_tv.meta["sources"] == catalog.load("task_vectors").meta["sources"]
    assert catalog.load("apds_people").filter(pl.col("chosen")).height == 1
    # people: every held-out person self-trained (repeat 0), paired with instant on the same runs
    st = catalog.load("self_training_metrics")
    assert st.filter(pl.col("method") == "instant+self_training").select("source", "rater_id").n_unique() == people
    assert {"mae_low", "mae_middle", "mae_high"} <= set(st.columns)
    comp = catalog.load("self_training_comparisons").filter(pl.col("method") == "instant+self_training")
    assert comp["people"].to_list() == [people] and comp["versus"].to_list() == ["instant"]
    # the field's methods in the same summary; prompts only for people with a profile (PARA-like)
    summary = catalog.load("personalization_summary")
    assert {"pa_iaa", "multi_attribute", "finetune_head", "aesmamba_p", "aesmamba_p_none", "aesmamba_p_big5"} <= set(summary["method"])
    profiled = plan.filter(pl.col("source") == "para").select("rater_id").n_unique()
    assert summary.filter((pl.col("method") == "aesmamba_p") & (pl.col("k") == 10))["people"].item() == profiled
    assert catalog.load("multi_attribute_metrics").height > 0
    vs = catalog.load("personalization_vs_reference")
    assert {"pa_iaa", "aesmamba_p", "instant"} <= set(vs["method"]) and set(vs["versus"]) == {"zero_shot_ensemble"}
    check = catalog.load("report_check")
    from aestimo.evaluation.browser import browser_unavailable

    if browser_unavailable() is None:  # Chromium is here: the check must have run, and on the whole report
        assert check["checked"] is True, check
        assert check["images"] > 0 and {"pa_iaa", "instant", "zero_shot_ensemble"} <= set(check["methods"])
        assert check["width"] <= check["viewport_width"]  # nothing wider than the window
    else:  # no browser: said so, with what to install
        assert check["checked"] is False and check["reason"]


def test_rerun_reuses_the_experts_and_a_stage_runs_alone(project, monkeypatch):
    """A rerun with nothing changed trains no expert again; the personalization stage reruns alone."""
    from aestimo.training import experts as loop

    tmp, before = project
    weights, metrics = before.load("ava.expert_weights"), before.load("personalization_metrics")
    steps = []
    real = loop.cosine_lr
    monkeypatch.setattr(loop, "cosine_lr", lambda *a: steps.append(a) or real(*a))
    with inside(tmp):
        run(tmp, "experts")
        assert steps == []  # every stage of every expert was reused
        run(tmp, "personalization", runtime_params={"personalize": {"defaults": {"steps": 2}}})
    after = catalog(tmp)
    assert all(torch.equal(after.load("ava.expert_weights")[k], weights[k]) for k in weights.tensors)
    key = ["source", "rater_id", "method", "k", "repeat"]
    both = metrics.join(after.load("personalization_metrics"), on=key, suffix="_new")
    changed = both.filter(pl.col("srocc") != pl.col("srocc_new"))["method"].unique().to_list()
    # only the methods that take gradient steps (exact λ learning, the fine-tuning baselines) reran
    assert "exact" in changed and set(changed) <= {"exact", "finetune_head", "finetune_all"}


def test_one_hot_merge_reproduces_the_trained_experts(project):
    _, catalog = project
    tv, cache = catalog.load("task_vectors"), catalog.load("image_cache")
    preds = catalog.load("expert_predictions")
    splits = catalog.load("generic_splits")
    read_downstream = splits.filter(pl.col("split").is_in(["test", "personal"]))["image_id"]
    predicted = set(preds["image_id"].to_list())
    assert predicted == set(read_downstream.to_list())  # no training image scored
    ctx = _context(catalog)
    merged = ctx.merged
    rows = [i for i, iid in enumerate(cache.meta["image_ids"]) if iid in predicted][:8]
    x = ctx.images(torch.as_tensor(rows))
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
    key = sorted(k for k in catalog.load("user_coefficients") if k.startswith("flickr_aes__"))[0]  # a 1-5 scale
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
    """Scoring image files with the deployed λ gives the scores the pipeline's own method predicts
    for the same images from the image cache, value by value."""
    import aestimo

    tmp, catalog = project
    key = sorted(catalog.load("user_coefficients"))[0]
    source, _ = split_person_key(key)
    images = catalog.load("images").sort("image_id").head(4)
    result = aestimo.score([str(tmp / p) for p in images["path"]], user=key.replace("__", ":", 1), project=tmp, env="smoke")
    assert result.errors == [] and result.table.height == 4

    ctx = _context(catalog)
    lam = catalog.load("user_coefficients")[key]()[state_key("instant", 10, 0, "lambda")]
    rows = torch.as_tensor([catalog.load("image_cache").meta["image_ids"].index(i) for i in images["image_id"]])
    query = Query(source, rows, np.zeros((6, len(rows))))
    want = SCALES[source].from_template(TaskVectors().predict({"lambda": lam}, query, ctx))
    np.testing.assert_allclose(result.table["score"].to_numpy(), want, rtol=1e-5, atol=1e-5)

    # the same person from its files, from any folder, without the project
    data = tmp / "data" / "smoke" / "06_models"
    by_files = aestimo.score(
        [str(tmp / p) for p in images["path"]], theta0=data / "theta0.safetensors",
        task_vectors=data / "task_vectors.safetensors", coefficients=data / "user_coefficients" / f"{key}.safetensors",
    )
    assert by_files.table.equals(result.table)


def test_the_deployed_coefficients_table_holds_every_persons_deployed_states(project):
    """One row per person × k × repeat × tensor of the deployed method, equal to user_coefficients' tensors."""
    _, catalog = project
    table = catalog.load("deployed_coefficients")
    deploy = catalog.load("params:personalize")["deploy_method"]
    assert table.height and set(table["method"]) == {deploy}
    plan = catalog.load("personalization_plan")
    assert table.filter(pl.col("tensor") == "lambda").height == plan.height  # every planned run of the deployed method
    coeffs = catalog.load("user_coefficients")
    for row in table.sample(5, seed=0).iter_rows(named=True):
        bundle = coeffs[person_key(row["source"], row["rater_id"])]()
        want = bundle[state_key(row["method"], row["k"], row["repeat"], row["tensor"])]
        got = torch.tensor(row["values"], dtype=torch.float32).reshape(row["shape"])
        assert torch.equal(got, want.float())


def test_worker_processes_give_the_in_process_numbers(project):
    """Runs shared across spawned workers (one thread each) equal the same runs done here."""
    _, catalog = project
    ctx = _context(catalog)
    n = len(ctx.experts)
    rng = np.random.default_rng(0)
    jobs = []
    for j, layerwise in enumerate([True, False, True]):
        rows = torch.as_tensor(rng.choice(len(ctx.images.pixels), 14, replace=False))
        y = torch.as_tensor(rng.uniform(1, 10, 10), dtype=torch.float32)
        method = TaskVectors(LambdaOptions(steps=3, batch_size=8, layerwise=layerwise))
        support = Support("ava", f"p{j}", 10, 0, j, rows[:10], y, rng.normal(size=(n, 10)))
        jobs.append(Job("tv", method, support, Query("ava", rows[10:], rng.normal(size=(n, 4)))))
    # instant's shared features are computed once (in two worker processes) and reach the job workers
    inst = Instant(InstantOptions())
    fast = [Job("instant", inst, j.support, j.query) for j in jobs]
    ctx.workers = 2
    with shared_out(ctx):  # a cluster of its own, for the block
        prepare(ctx, fast)
    in_workers = next(iter(ctx.shared.values()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = _context(catalog)
        prepare(alone, fast)  # the same features, computed here on one thread
        in_process = next(iter(alone.shared.values()))
        here = run_jobs(ctx, jobs, workers=1) + [run_job(ctx, j) for j in fast]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(in_workers.rows, in_process.rows)  # the chunks batch images differently: float32 rounding only
    torch.testing.assert_close(in_workers.phi, in_process.phi, rtol=1e-4, atol=1e-7)
    pooled = run_jobs(ctx, jobs, workers=2) + run_jobs(ctx, fast, workers=2)
    for a, b in zip(here, pooled):
        assert torch.equal(a.state["lambda"], b.state["lambda"]) and np.array_equal(a.scores, b.scores)
    assert not torch.equal(here[0].state["lambda"], here[2].state["lambda"])  # the jobs differ, so equality above means something
    # one cluster for the features and the runs, as a run opens it: the same workers throughout, the same numbers
    shared = _context(catalog)
    shared.workers = 2
    with Cluster(2) as cluster, shared_out(shared):
        workers = cluster.client.run(os.getpid)
        prepare(shared, fast)  # the features, on the workers; the runs read them there
        once = run_jobs(shared, jobs, workers=2) + run_jobs(shared, fast, workers=2)
        assert cluster.client.run(os.getpid) == workers
    assert shared.mapper is None
    for a, b in zip(here, once):
        assert torch.equal(a.state["lambda"], b.state["lambda"]) and np.array_equal(a.scores, b.scores)


def _tv_jobs(ctx: Context, people: int, seed: int, steps: int = 2) -> list[Job]:
    rng = np.random.default_rng(seed)
    jobs = []
    for j in range(people):
        rows = torch.as_tensor(rng.choice(len(ctx.images.pixels), 14, replace=False))
        y = torch.as_tensor(rng.uniform(1, 10, 10), dtype=torch.float32)
        support = Support("ava", f"p{j}", 10, 0, j, rows[:10], y, rng.normal(size=(len(ctx.experts), 10)))
        jobs.append(Job("tv", TaskVectors(LambdaOptions(steps=steps, batch_size=8)), support, Query("ava", rows[10:], rng.normal(size=(len(ctx.experts), 4)))))
    return jobs


def _in_process(ctx: Context, jobs: list[Job]):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_jobs(ctx, jobs, workers=1)
    finally:
        torch.set_num_threads(threads)


def test_one_cluster_serves_each_block_with_its_own_context(project):
    """As in a Kedro run, one cluster serves node after node: the same worker processes, each block's
    own context (other task vectors give that context's numbers)."""
    from aestimo.bundle import TensorBundle

    _, catalog = project
    first = _context(catalog)
    tau = first.task_vectors
    second = Context(first.images, first.theta0, TensorBundle({k: 0.5 * v for k, v in tau.tensors.items()}, tau.meta), first.experts)
    jobs = _tv_jobs(first, 3, seed=1)
    want = [_in_process(c, jobs) for c in (first, second)]
    got, pids = [], []
    with Cluster(2) as cluster:
        for c in (first, second):
            c.workers = 2
            with shared_out(c):
                got.append(run_jobs(c, jobs, workers=2))
                pids.append(cluster.client.run(os.getpid))
            assert c.mapper is None
    assert pids[0] == pids[1]  # no second start
    for w, g in zip(want, got):
        for a, b in zip(w, g):
            assert torch.equal(a.state["lambda"], b.state["lambda"]) and np.array_equal(a.scores, b.scores)
    assert not np.array_equal(want[0][0].scores, want[1][0].scores)  # the contexts differ, so the equality above means something


def test_a_worker_killed_mid_run_loses_only_its_tasks_in_flight(project):
    """A worker of a 2-worker cluster killed (SIGKILL) once the first results are in: its tasks run
    again elsewhere, every job's result comes back exactly once, with the numbers of a run here."""
    _, catalog = project
    ctx = _context(catalog)
    jobs = _tv_jobs(ctx, 12, seed=2, steps=4)
    want = _in_process(ctx, jobs)
    seen: list[int] = []
    with Cluster(2) as cluster:
        victim = next(iter(cluster.client.run(os.getpid).values()))

        def on_result(i, res):
            if not seen:
                os.kill(victim, signal.SIGKILL)
            seen.append(i)

        ctx.workers = 2
        got = run_jobs(ctx, jobs, workers=2, on_result=on_result)
        assert victim not in cluster.client.run(os.getpid).values()  # it was killed (and its nanny started another)
    assert sorted(seen) == list(range(len(jobs)))  # every job once
    for a, b in zip(want, got):
        assert torch.equal(a.state["lambda"], b.state["lambda"]) and np.array_equal(a.scores, b.scores)


def test_a_job_that_raises_names_its_person_k_and_repeat(project):
    """On the cluster and here alike, the run stops with the method, person, k and repeat named."""
    _, catalog = project
    ctx = _context(catalog)
    jobs = _tv_jobs(ctx, 3, seed=3)
    bad = jobs[1].support
    jobs[1].support = Support(bad.source, bad.rater_id, bad.k, 1, bad.seed, bad.rows + len(ctx.images.pixels), bad.y, bad.expert_scores)
    for workers in (1, 2):
        ctx.workers = workers
        with pytest.raises(JobFailed, match=r"tv on ava person p1 \(k=10, repeat 1\): IndexError"):
            run_jobs(ctx, jobs, workers=workers)


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
