"""What `kedro viz build` shows for the smoke environment: the layer view on (the catalog's layers
have no cycle, in the flowchart or between a stage's inputs and outputs), and the chain as its
seven stages, each a modular pipeline that holds its own nodes, the per-source ones nested inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aestimo.pipeline_registry import STAGES
from aestimo.pipelines.sources import yaml_sources
from tests.kedro_project import new_project

LAYERS = ["raw", "primary", "model_input", "models", "model_output", "adapted_models", "reporting"]
PER_SOURCE = {"experts": ("train_head_on_features", "finetune_whole_model", "plot_training_curves"),
              "self_training": ("choose_pseudo_labelling", "pseudo_label_pool", "self_train_expert")}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """`KEDRO_ENV=smoke kedro viz build` in a fresh project folder: its output and its `build/api` folder."""
    tmp = new_project(tmp_path_factory.mktemp("viz_project"))
    env = {**os.environ, "KEDRO_ENV": "smoke", "HF_HUB_OFFLINE": "1", "KEDRO_DISABLE_TELEMETRY": "1"}
    done = subprocess.run([sys.executable, "-m", "kedro", "viz", "build"], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and (tmp / "build" / "index.html").is_file(), out[-3000:]
    return out, tmp / "build" / "api", tmp / "conf"


def _read(api, name):
    return json.loads((api / name).read_text())


def _tasks_under(tree, mp_id):
    """Ids of the task nodes a modular pipeline holds, its nested modular pipelines' included."""
    found = set()
    for child in tree[mp_id]["children"]:
        if child["type"] == "task":
            found.add(child["id"])
        elif child["type"] == "modularPipeline":
            found |= _tasks_under(tree, child["id"])
    return found


def test_the_layer_view_is_on_with_every_dataset_in_a_layer(build):
    out, api, _ = build
    assert "circular dependency" not in out
    main = _read(api, "main")
    assert main["selected_pipeline"] == "__default__" and main["layers"] == LAYERS
    unlayered = [n["name"] for n in main["nodes"] if n["type"] == "data" and not n.get("layer")]
    assert unlayered == []
    for registered in api.joinpath("pipelines").iterdir():  # each registered pipeline's own view
        assert _read(api, f"pipelines/{registered.name}")["layers"], registered.name


def test_the_seven_stages_are_the_top_level_boxes_in_chain_order(build):
    _, api, _ = build
    tree = _read(api, "main")["modular_pipelines"]
    top = [c["id"] for c in tree["__root__"]["children"] if c["type"] == "modularPipeline"]
    assert sorted(top) == sorted(STAGES)
    feeds = {(a, b) for a in STAGES for b in STAGES if a != b and set(tree[a]["outputs"]) & set(tree[b]["inputs"])}
    assert all(STAGES.index(a) < STAGES.index(b) for a, b in feeds), sorted(feeds)  # no stage feeds an earlier one
    for i, stage in enumerate(STAGES):
        if i:
            assert any(b == stage for _, b in feeds), f"{stage} reads nothing of an earlier stage"
        if i < len(STAGES) - 1:
            assert any(a == stage for a, _ in feeds), f"{stage} feeds no later stage"


def test_each_stage_holds_its_own_nodes_and_the_per_source_ones_nested(build, monkeypatch):
    _, api, conf = build
    main = _read(api, "main")
    tree, tasks = main["modular_pipelines"], {n["id"]: n for n in main["nodes"] if n["type"] == "task"}
    held = {stage: _tasks_under(tree, stage) for stage in STAGES}
    assert sum(len(ids) for ids in held.values()) == len(tasks) and set().union(*held.values()) == set(tasks)
    for stage in STAGES:
        alone = _read(api, f"pipelines/{stage}")  # `kedro run --pipeline <stage>`: the same nodes
        assert {tasks[i]["full_name"] for i in held[stage]} == {n["full_name"] for n in alone["nodes"] if n["type"] == "task"}
        assert all(tasks[i]["full_name"].startswith(stage + ".") and stage in tasks[i]["tags"] for i in held[stage])
    monkeypatch.setenv("KEDRO_ENV", "smoke")
    sources = yaml_sources(conf)
    for stage, names in PER_SOURCE.items():
        nested = {c["id"] for c in tree[stage]["children"] if c["type"] == "modularPipeline"}
        assert nested == {f"{stage}.{s}" for s in sources}
        for s in sources:
            assert {tasks[i]["full_name"] for i in _tasks_under(tree, f"{stage}.{s}")} == {f"{stage}.{s}.{n}" for n in names}


def test_dataset_names_are_not_prefixed_by_their_stage(build):
    _, api, _ = build
    names = {n["name"] for n in _read(api, "main")["nodes"] if n["type"] == "data"}
    assert {"theta0", "task_vectors", "personalization_summary", "ava.expert_weights", "spaq.self_trained_weights"} <= names
    assert not [n for n in names if n.startswith(tuple(f"{s}." for s in STAGES))]
