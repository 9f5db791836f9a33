"""``--env real``: the papers' settings, stopping before any node while a root is empty, and a
smaller real run chosen with ``--params`` alone (no KEDRO_ENV)."""

import pytest
from kedro.framework.session import KedroSession

from aestimo.hooks import InvalidSettings
from aestimo.pipelines.sources import rebuild_registered_pipelines, use_run_sources
from tests.kedro_project import inside, new_project
from tests.test_pipeline_registry import SIX, Recorder, _namespaces

OTHERS = ["aadb", "real_cur", "eva"]  # people without an expert; conf/real starts them disabled


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = new_project(tmp_path_factory.mktemp("real_project"))
    (tmp / "downloads").mkdir()
    with inside(tmp):
        yield tmp
    use_run_sources(None)
    rebuild_registered_pipelines()


def _start(tmp, runtime_params):
    """The run as `kedro run --pipelines personalize --env real --params ...` starts it; no node runs."""
    recorder = Recorder()
    recorder.pipeline = None
    with KedroSession.create(project_path=tmp, env="real", runtime_params=runtime_params) as session:
        session.run(pipeline_names=["personalize"], runner=recorder)
        return recorder.pipeline, session.load_context().params


def test_empty_roots_stop_the_run_before_any_node(project):
    recorder = Recorder()
    recorder.pipeline = None
    with pytest.raises(InvalidSettings) as err, KedroSession.create(project_path=project, env="real") as session:
        session.run(pipeline_names=["personalize"], runner=recorder)
    assert recorder.pipeline is None  # the runner was never reached
    assert "parameter 'ingest.sources.ava.root' is empty" in str(err.value) and "Traceback" not in str(err.value)


def test_real_runs_the_papers_settings_once_roots_are_set(project):
    roots = {"ingest": {"sources": {s: {"root": "downloads"} for s in SIX}}}
    pipe, params = _start(project, roots)
    assert _namespaces(pipe) == sorted(SIX)
    e = params["experts"]
    assert (e["backbone"], e["weights"], e["cache_size"], e["input_size"], e["threads"]) == (
        "vit_base_patch16_clip_224.openai", "hub", 256, 224, None)
    assert (e["stage1"]["steps"], e["stage1"]["batch_size"], e["stage1"]["lr_head"]) == (60000, 128, [1.5e-5, 1.5e-6])
    assert (e["stage2"]["steps"], e["stage2"]["batch_size"], e["stage2"]["lr_backbone"]) == (5000, 32, [1.5e-6, 1.5e-7])
    p = params["personalize"]
    assert (p["defaults"]["steps"], p["defaults"]["batch_size"], p["defaults"]["lr"]) == (500, 32, [1e-2, 1e-3])
    assert p["methods"]["exact"]["sample"] is None and p["people"] is None and p["ks"] == [10, 100]
    assert params["ingest"]["fewshot"]["repeats"] == 10


def test_a_smaller_real_run_from_params_alone(project, monkeypatch):
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    small = {
        "ingest": {"sources": {"ava": {"root": "downloads"}, **{s: {"enabled": False} for s in SIX if s != "ava"}}},
        "experts": {"sources": ["ava"], "backbone": "tf_efficientnet_lite0", "weights": "package",
                    "cache_size": 72, "input_size": 64, "stage1": {"steps": 300}, "stage2": {"steps": 50}},
    }
    pipe, params = _start(project, small)
    assert _namespaces(pipe) == ["ava"]
    assert params["experts"]["stage2"]["lr_backbone"] == [1.5e-6, 1.5e-7]  # what --params leaves alone stays the environment's
