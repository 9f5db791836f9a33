"""The method registry: the built-in methods, the baselines' known answers, ceilings, adding a method."""

import numpy as np
import pytest
import torch

from aestimo.personalization import REGISTRY, Method, Query, Support, method_class, register
from aestimo.personalization.methods.expert_choice import BestExpertOnSupport, SingleExpert, ZeroShotEnsemble
from aestimo.personalization.running.keys import parse_state_key
from aestimo.personalization.methods.oracle import Oracle
from aestimo.personalization.running.jobs import Result
from aestimo.personalization.registry import Context
from aestimo.personalization.running.runs import ConfiguredMethod, RunData, build_jobs, collect


class FakeContext(Context):
    def __init__(self, experts):
        self.experts = experts


def _support(y, expert_scores, source="flickr_aes", rater="W1", k=None, repeat=0):
    y = torch.as_tensor(y, dtype=torch.float32)
    return Support(source, rater, k or len(y), repeat, 0, torch.arange(len(y)), y, np.asarray(expert_scores, dtype=float))


def test_builtin_methods_are_registered():
    assert {"task_vectors", "zero_shot_ensemble", "single_expert", "best_expert_on_support", "oracle"} <= set(REGISTRY)
    with pytest.raises(KeyError, match="unknown personalization method 'nope'"):
        method_class("nope")


def test_best_expert_on_support_picks_the_expert_that_ranks_the_support_best():
    ctx = FakeContext(["a", "b", "c"])
    y = [1, 2, 3, 4, 5]
    scores = [[5, 4, 3, 2, 1], [1, 3, 2, 4, 5], [1, 2, 3, 4, 5]]  # c ranks perfectly, b nearly, a backwards
    state = BestExpertOnSupport().fit(_support(y, scores), ctx)
    assert state["expert"].item() == 2
    query = Query("flickr_aes", torch.arange(3), np.array([[0.0, 1, 2], [3, 4, 5], [6, 7, 8]]))
    assert BestExpertOnSupport().predict(state, query, ctx).tolist() == [6, 7, 8]
    # all support scores equal: no expert agrees, the first is kept
    assert BestExpertOnSupport().fit(_support([3, 3, 3, 3, 3], scores), ctx)["expert"].item() == 0


def test_ensemble_and_single_expert_predict_from_the_experts_scores():
    ctx = FakeContext(["a", "b"])
    query = Query("ava", torch.arange(2), np.array([[1.0, 3.0], [3.0, 5.0]]))
    assert ZeroShotEnsemble().predict({}, query, ctx).tolist() == [2.0, 4.0]
    assert SingleExpert(SingleExpert.Options(expert="b")).predict({}, query, ctx).tolist() == [3.0, 5.0]
    rows = SingleExpert.variants("zero_shot", SingleExpert.Options(), ["a", "b"])
    assert {k: v.expert for k, v in rows.items()} == {"zero_shot_a": "a", "zero_shot_b": "b"}


def test_ceilings_run_only_where_the_hidden_truth_exists():
    ctx = FakeContext(["a"])
    with_truth = RunData(_support([1, 2], [[1, 2]]), Query("ava", torch.arange(2), np.zeros((1, 2)), np.array([0.1, 0.9])), np.array([1.0, 2]))
    real = RunData(_support([1, 2], [[1, 2]], rater="R"), Query("ava", torch.arange(2), np.zeros((1, 2))), np.array([1.0, 2]))
    jobs = build_jobs([ConfiguredMethod("oracle", Oracle()), ConfiguredMethod("ens", ZeroShotEnsemble(), ks=[2])], [with_truth, real])
    assert [(j.name, j.support.rater_id) for j in jobs] == [("oracle", "W1"), ("ens", "W1"), ("ens", "R")]
    assert Oracle().predict({}, with_truth.query, ctx).tolist() == [0.1, 0.9]


def test_a_new_method_is_one_class_and_its_state_lands_under_its_keys():
    @register("test_constant_offset")
    class Offset(Method):
        class Options(Method.Options):
            shift: float = 1.0

        def fit(self, support, ctx):
            return {"mean": support.y.mean().reshape(1) + self.options.shift}

        def predict(self, state, query, ctx):
            return query.expert_scores[0] + float(state["mean"])

    try:
        ctx = FakeContext(["a"])
        run = RunData(_support([1, 3], [[1, 2]]), Query("ava", torch.arange(3), np.array([[1.0, 2.0, 3.0]])), np.array([1.0, 2.0, 3.0]))
        jobs = build_jobs([ConfiguredMethod("offset", Offset(Offset.Options(shift=0.5)))], [run])
        results = [Result(j.method.fit(j.support, ctx), j.method.predict(j.method.fit(j.support, ctx), j.query, ctx), 0.0) for j in jobs]
        bundles, table, timings = collect(jobs, results, [run], {"deploy_method": "offset"})
        assert table["method"].to_list() == ["offset"] and table["srocc"].item() == pytest.approx(1.0)
        (key, bundle), = bundles.items()
        assert key == "flickr_aes__W1" and bundle.meta["source"] == "flickr_aes"
        assert [parse_state_key(k) for k in bundle] == [("offset", 2, 0, "mean")]
        assert bundle["offset/k2/r0/mean"].item() == pytest.approx(2.5)
    finally:
        REGISTRY.pop("test_constant_offset")


def test_metric_rows_taken_as_results_come_in_equal_those_computed_at_the_end():
    """run_jobs hands each result to ``on_result`` once; the metric rows filled that way are the rows
    collect computes itself."""
    from aestimo.personalization.running.jobs import run_jobs
    from aestimo.personalization.running.runs import MetricRows

    ctx = FakeContext(["a", "b"])
    rng = np.random.default_rng(0)
    data = [RunData(_support(rng.uniform(1, 5, 6), rng.normal(size=(2, 6)), rater=f"R{i}"),
                    Query("flickr_aes", torch.arange(8), rng.normal(size=(2, 8))), rng.uniform(1, 5, 8)) for i in range(3)]
    jobs = build_jobs([ConfiguredMethod("best", BestExpertOnSupport()), ConfiguredMethod("ens", ZeroShotEnsemble())], data)
    seen: list[int] = []
    rows = MetricRows(jobs, data)
    results = run_jobs(ctx, jobs, on_result=lambda i, res: (seen.append(i), rows(i, res)))
    assert sorted(seen) == list(range(len(jobs)))
    _, with_rows, _ = collect(jobs, results, data, {}, rows=rows)
    _, plain, _ = collect(jobs, results, data, {})
    assert with_rows.equals(plain) and with_rows.height == len(jobs)
    assert with_rows["srocc"].n_unique() > 1  # the runs differ


def test_every_registered_method_has_a_test_of_its_own():
    """A method added to the registry without a test that builds it (by name or class) fails here."""
    from pathlib import Path

    texts = [p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py")]
    untested = [name for name, cls in REGISTRY.items() if not name.startswith("test_")  # the tests' own toys
                and not any(f'"{name}"' in t or f"{cls.__name__}(" in t for t in texts)]
    assert not untested, f"registered methods no test module builds: {untested}"
