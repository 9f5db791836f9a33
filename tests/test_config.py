"""aestimo.config: a bad parameter stops a run with a message that names it."""

from __future__ import annotations

import pytest

from aestimo import config

INGEST = {"sources": {"para": {"root": "data/01_raw/para", "test_users": {"count": 4}}}}
STAGE = {"steps": 10, "batch_size": 4, "lr_head": [1e-3, 1e-4]}
EXPERTS = {"sources": ["ava"], "stage1": STAGE, "stage2": STAGE, "checkpoint_dir": "data/06_models/ckpt"}


def _with(base: dict, path: str, value) -> dict:
    """A deep copy of ``base`` with the dotted ``path`` set to ``value``."""
    import copy

    out = copy.deepcopy(base)
    node = out
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return out


def test_valid_ingest_gets_defaults():
    p = config.parse("ingest", INGEST)
    assert p.on_bad_rows == "error"
    assert p.fewshot.ks == [10, 100]
    assert p.sources["para"].test_users.count == 4
    assert config.parse("ingest", p) is p  # an already parsed block passes through


@pytest.mark.parametrize(
    "path, value, where",
    [
        ("fewshot.ks", [10, 0], "ingest.fewshot.ks"),
        ("fewshot.ks", [], "ingest.fewshot.ks"),
        ("fewshot.ks", "ten", "ingest.fewshot.ks"),
        ("fewshot.repeats", 0, "ingest.fewshot.repeats"),
        ("generic_splits.val_fraction", 1.5, "ingest.generic_splits.val_fraction"),
        ("on_bad_rows", "ignore", "ingest.on_bad_rows"),
        ("sources.para.test_users.count", 0, "ingest.sources.para.test_users.count"),
        ("sources.para.root", None, "ingest.sources.para.root"),
    ],
)
def test_ingest_errors_name_the_parameter(path, value, where):
    with pytest.raises(ValueError, match="Invalid parameters") as err:
        config.parse("ingest", _with(INGEST, path, value))
    assert f"parameter '{where}" in str(err.value)


def test_missing_required_block_is_named():
    with pytest.raises(ValueError, match="parameter 'ingest.sources'"):
        config.parse("ingest", {})


@pytest.mark.parametrize(
    "path, where",
    [
        ("sourcez", "ingest.sourcez"),
        ("fewshot.k", "ingest.fewshot.k"),
        ("sources.para.test_user", "ingest.sources.para.test_user"),
    ],
)
def test_unknown_keys_rejected(path, where):
    with pytest.raises(ValueError, match=f"parameter '{where}' is not a known name") as err:
        config.parse("ingest", _with(INGEST, path, 1))
    assert "did you mean" in str(err.value)  # every one of these is a near miss


def test_unknown_key_hint_names_the_closest_valid_name():
    msg = str(pytest.raises(ValueError, config.parse, "ingest", _with(INGEST, "fewshot.repeat", 3)).value)
    assert "parameter 'ingest.fewshot.repeat' is not a known name (did you mean 'repeats'?)" in msg
    msg = str(pytest.raises(ValueError, config.parse, "ingest", _with(INGEST, "zzz", 3)).value)
    assert "known names: fewshot, generic_splits" in msg
    msg = str(pytest.raises(ValueError, config.parse, "personalize", {"methods": {"m": {"method": "task_vectors", "stepz": 3}}, "deploy_method": "m"}).value)
    assert "parameter 'personalize.methods.m.stepz' is not a known name (did you mean 'steps'?)" in msg


def test_every_error_is_listed():
    raw = _with(_with(INGEST, "fewshot.repeats", 0), "generic_splits.seed", "x")
    msg = str(pytest.raises(ValueError, config.parse, "ingest", raw).value)
    assert "ingest.fewshot.repeats" in msg and "ingest.generic_splits.seed" in msg


def test_experts_valid_and_crop_fits():
    p = config.parse("experts", EXPERTS)
    assert p.input_size <= p.cache_size
    config.parse("experts", _with(EXPERTS, "input_size", p.cache_size))  # equal is fine


def test_experts_input_size_above_cache_size_rejected():
    with pytest.raises(ValueError, match=r"input_size 96 exceeds cache_size 72"):
        config.parse("experts", _with(EXPERTS, "input_size", 96))


def test_experts_stage_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"parameter 'experts\.stage1\.steps'"):
        config.parse("experts", _with(EXPERTS, "stage1.steps", 0))
    with pytest.raises(ValueError, match=r"parameter 'experts\.sources'"):
        config.parse("experts", _with(EXPERTS, "sources", []))


TV = {"instant": {"method": "instant"}, "layerwise_rank": {"method": "task_vectors"}}


def test_personalize_deploy_method_must_be_a_method():
    with pytest.raises(ValueError, match="deploy_method 'nope'"):
        config.parse("personalize", {"methods": TV, "deploy_method": "nope"})


def test_personalize_deploy_method_must_have_a_state_scoring_can_use():
    raw = {"methods": TV | {"best": {"method": "best_expert_on_support"}}, "deploy_method": "best"}
    with pytest.raises(ValueError, match="parameter 'personalize.deploy_method': 'best' is a best_expert_on_support method"):
        config.parse("personalize", raw)


def test_experts_stages_take_the_loss_weights():
    p = config.parse("experts", _with(EXPERTS, "loss", {"w_mse": 2.0, "w_bal": 0.0}))
    assert p.stage("stage2").loss.w_mse == 2.0 and p.stage("stage1").loss.w_bal == 0.0 and p.stage2.steps == 10


def test_personalize_defaults_fill_the_options_a_method_has():
    p = config.parse("personalize", {"methods": TV | {"ens": {"method": "zero_shot_ensemble"}}, "defaults": {"steps": 7}})
    built = {m.name: m.method for m in p.configured_methods(["a", "b"])}
    assert built["layerwise_rank"].options.steps == 7  # from defaults
    assert built["ens"].options.model_dump() == {}  # the ensemble has no steps: the default is not forced on it
    own = config.parse("personalize", {"methods": {"instant": {"method": "instant"}, "layerwise_rank": {"method": "task_vectors", "steps": 3}}, "defaults": {"steps": 7}})
    assert own.configured_methods([])[1].method.options.steps == 3  # an entry's own value wins


def test_personalize_single_expert_expands_to_one_row_per_expert():
    p = config.parse("personalize", {"methods": TV | {"zero_shot": {"method": "single_expert"}}})
    names = [m.name for m in p.configured_methods(["ava", "spaq"])]
    assert names == ["instant", "layerwise_rank", "zero_shot_ava", "zero_shot_spaq"]


@pytest.mark.parametrize(
    "entry, where",
    [
        ({"method": "no_such_method"}, "personalize.methods.m.method"),
        ({"method": "task_vectors", "loss": "hinge"}, "personalize.methods.m.loss"),
        ({"method": "task_vectors", "stepz": 3}, "personalize.methods.m.stepz"),
        ({"method": "task_vectors", "dropout": 1.0}, "personalize.methods.m.dropout"),
    ],
)
def test_personalize_method_errors_name_the_parameter(entry, where):
    with pytest.raises(ValueError, match="Invalid parameters") as err:
        config.parse("personalize", {"methods": {"m": entry}, "deploy_method": "m"})
    assert f"parameter '{where}'" in str(err.value)


def test_unknown_section_raises():
    with pytest.raises(KeyError):
        config.parse("no_such_pipeline", {})


def test_personalize_workers_and_batched_exclude_each_other():
    methods = TV
    with pytest.raises(ValueError, match="workers to 1"):
        config.parse("personalize", {"methods": methods, "batched": True, "workers": 2})
    with pytest.raises(ValueError, match="personalize.workers"):
        config.parse("personalize", {"methods": methods, "workers": -1})
    assert config.parse("personalize", {"methods": methods, "workers": 0, "batched": True}).workers == 0  # 0: in the process
    p = config.parse("personalize", {"methods": {"m": {"method": "task_vectors", "loss": "mse", "ks": [10]}}, "deploy_method": "m", "workers": 2})
    assert p.methods["m"].ks == [10] and p.workers == 2
