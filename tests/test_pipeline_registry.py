"""The per-source pipelines follow the run's own parameters (``--env``, ``--params experts.sources``),
with no KEDRO_ENV; a source that experts and ingest disagree on stops the run with one line. Each
stage is a modular pipeline (a namespace) whose datasets keep their names."""

import os
import subprocess
import sys

import pytest
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.runner import SequentialRunner
from omegaconf import OmegaConf

from aestimo.hooks import InvalidSettings, NodeTimingHooks, source_problems
from aestimo.pipeline_registry import STAGES
from aestimo.pipelines.sources import configured_sources, rebuild_registered_pipelines, use_run_sources, yaml_sources
from tests.kedro_project import inside, new_project

SIX = ["ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq"]
PER_SOURCE = ("experts", "task_vectors", "self_training")


class Recorder(SequentialRunner):
    """Takes the pipeline a session would run and runs none of it."""

    def run(self, pipeline, catalog, hook_manager=None, run_id=None, only_missing_outputs=False):
        self.pipeline = pipeline
        return {}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = new_project(tmp_path_factory.mktemp("registry_project"))
    with inside(tmp):
        yield tmp
    use_run_sources(None)  # later tests in this process build pipelines from the YAML again
    rebuild_registered_pipelines()


def _run(tmp, pipeline, env="smoke", params: list[str] | None = None):
    """``kedro run --pipelines <pipeline> --env <env> --params <params>``, recording instead of running
    (the params parsed as Kedro's CLI parses them: an OmegaConf dot list)."""
    runtime = OmegaConf.to_container(OmegaConf.from_dotlist(params)) if params else None
    recorder = Recorder()
    with KedroSession.create(project_path=tmp, env=env, runtime_params=runtime) as session:
        session.run(pipeline_names=[pipeline], runner=recorder)
    return recorder.pipeline


def _namespaces(pipe):
    """The per-source namespaces, without their stage: ``experts.ava`` and ``self_training.ava`` are ``ava``."""
    return sorted({n.namespace.split(".", 1)[1] for n in pipe.nodes if n.namespace and "." in n.namespace})


def _signature(pipe):
    return [(n.name, tuple(n.inputs), tuple(n.outputs)) for n in pipe.nodes]


def test_params_choose_the_expert_sub_pipelines(project):
    ran = _run(project, "personalize", params=["experts.sources=[para,flickr_aes]"])
    assert _namespaces(ran) == ["flickr_aes", "para"]  # experts and self-training, for these two only
    assert {n.name for n in ran.nodes} >= {"experts.para.finetune_whole_model", "self_training.flickr_aes.self_train_expert"}
    tv = next(n for n in ran.nodes if n.name == "task_vectors.build_task_vectors")
    assert tv.inputs == ["theta0", "para.expert_weights", "flickr_aes.expert_weights"]  # in the order given
    for stage in ("experts", "self_training"):  # the registry the run used (the timing hook reads it) agrees
        assert _namespaces(pipelines[stage]) == ["flickr_aes", "para"]


def test_a_run_without_params_builds_the_configured_list_as_before(project):
    use_run_sources(None)
    rebuild_registered_pipelines()
    assert configured_sources() == yaml_sources() == SIX
    before = {name: _signature(pipelines[name]) for name in ("personalize", *PER_SOURCE)}  # no run: the YAML, as today
    ran = _run(project, "personalize", params=["experts.sources=[ava]"])
    assert _namespaces(ran) == ["ava"]
    ran = _run(project, "personalize", env="smoke")  # the next run rebuilds for its own list
    assert _signature(ran) == before["personalize"]
    assert _namespaces(ran) == sorted(SIX)
    assert {name: _signature(pipelines[name]) for name in ("personalize", *PER_SOURCE)} == before


def test_an_expert_disabled_in_ingest_stops_with_one_line(project):
    with pytest.raises(InvalidSettings) as err:
        _run(project, "experts", params=["ingest.sources.para.enabled=false"])
    lines = str(err.value).splitlines()
    assert lines[1:] == ["  parameter 'experts.sources' names 'para', but 'ingest.sources.para.enabled' is false: "
                         "remove 'para' from experts.sources, or enable it and set its root"]
    _run(project, "experts", params=["ingest.sources.para.enabled=false", "experts.sources=[ava]"])  # left out: fine


def test_an_expert_that_is_no_source_stops_with_one_line(project):
    with pytest.raises(InvalidSettings, match=r"parameter 'experts.sources': 'avva' is not a source of 'ingest.sources'"):
        _run(project, "experts", params=["experts.sources=[avva]"])


def test_a_source_without_an_expert_is_one_note():
    from types import SimpleNamespace

    on, off = SimpleNamespace(enabled=True), SimpleNamespace(enabled=False)
    sources = {"ava": on, "aadb": on, "eva": off}
    ingest = SimpleNamespace(sources=sources, active_sources={k: v for k, v in sources.items() if v.enabled})
    problems, note = source_problems(ingest, SimpleNamespace(sources=["ava"]))
    assert problems == [] and "aadb" in note and "eva" not in note  # a disabled non-expert is not read: nothing to say
    assert "ingest.sources.<name>.enabled: false" in note and "\n" not in note
    assert source_problems(ingest, SimpleNamespace(sources=["ava", "aadb"])) == ([], None)


def test_the_command_line_names_the_setting_without_a_traceback(project):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    env.pop("KEDRO_ENV", None)
    done = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipelines", "experts", "--env", "smoke",
                           "--params", "ingest.sources.para.enabled=false"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "'ingest.sources.para.enabled' is false" in out and "Traceback" not in out


def test_each_stage_is_a_namespace_whose_datasets_keep_their_names(project):
    """A stage's nodes are named and tagged after it; no dataset or parameter takes its name (the
    catalog, the notebooks and `aestimo` open `theta0`, `ava.expert_weights`, ...)."""
    chain = _run(project, "personalize")  # built for smoke's own sources, whatever an earlier test ran
    assert sum(len(pipelines[s].nodes) for s in STAGES) == len(chain.nodes)
    for stage in STAGES:
        for node in pipelines[stage].nodes:
            assert node.namespace == stage or node.namespace.startswith(stage + "."), node.name
            assert node.name.startswith(stage + ".") and stage in node.tags
    names = chain.datasets()
    prefixes = tuple(f"{p}{s}." for s in STAGES for p in ("", "params:"))
    assert not [d for d in names if d.startswith(prefixes)]
    assert {"theta0", "task_vectors", "personalization_summary", "params:personalize"} <= names
    assert {f"{s}.{d}" for s in SIX for d in ("expert_weights", "self_trained_weights")} <= names
    assert NodeTimingHooks.STAGES == STAGES  # the timing summary groups nodes by the same stages


def test_a_stage_runs_alone_and_nodes_are_chosen_by_their_new_names(project):
    alone = _run(project, "personalization")
    assert {n.namespace for n in alone.nodes} == {"personalization"}
    assert _signature(alone) == _signature(pipelines["personalization"])
    with KedroSession.create(project_path=project, env="smoke") as session:  # kedro run --tags personalization
        recorder = Recorder()
        session.run(pipeline_names=["personalize"], tags=["personalization"], runner=recorder)
    assert _signature(recorder.pipeline) == _signature(alone)
    with KedroSession.create(project_path=project, env="smoke") as session:  # kedro run --namespaces experts
        recorder = Recorder()
        session.run(pipeline_names=["personalize"], namespaces=["experts"], runner=recorder)
    assert _signature(recorder.pipeline) == _signature(pipelines["experts"])
    with KedroSession.create(project_path=project, env="smoke") as session:  # kedro run --nodes ... --from-nodes ...
        recorder = Recorder()
        session.run(pipeline_names=["personalize"], node_names=["personalization.summarize_personalization"], runner=recorder)
    assert [n.name for n in recorder.pipeline.nodes] == ["personalization.summarize_personalization"]
    with KedroSession.create(project_path=project, env="smoke") as session:
        recorder = Recorder()
        session.run(pipeline_names=["personalize"], from_nodes=["self_training.ava.self_train_expert"], runner=recorder)
    assert {n.namespace.split(".")[0] for n in recorder.pipeline.nodes} == {"self_training", "reporting"}
