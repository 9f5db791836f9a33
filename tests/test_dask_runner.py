"""`kedro run --runner aestimo.runner.DaskRunner`: the per-source experts as Dask tasks on a
2-worker LocalCluster train the weights the sequential run trains."""

import shutil

import pytest
import torch
from distributed import get_task_stream
from kedro.framework.session import KedroSession

from aestimo.personalization.running.cluster import Cluster, current_client
from aestimo.runner import DaskRunner
from tests.kedro_project import catalog, inside, new_project, run


def _weights(tmp) -> dict[str, dict[str, torch.Tensor]]:
    cat = catalog(tmp)
    sources = cat.load("params:experts")["sources"]
    return {s: dict(cat.load(f"{s}.expert_weights").tensors) for s in sources}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    tmp = new_project(tmp_path_factory.mktemp("ingested"))
    with inside(tmp):
        run(tmp, "ingest")
    return tmp


def test_experts_side_by_side_equal_the_sequential_run(ingested, tmp_path):
    side = tmp_path / "side"
    shutil.copytree(ingested, side)
    with inside(ingested):
        run(ingested, "experts")
        sequential = _weights(ingested)
    with inside(side), Cluster(2) as cluster, get_task_stream(cluster.client) as stream:
        with KedroSession.create(project_path=side, env="smoke") as session:
            session.run(pipeline_name="experts", runner=DaskRunner())
        side_by_side = _weights(side)
    ran = {t["key"] for t in stream.data}
    for s in sequential:  # each source's fine-tuning was a Dask task
        assert any(k.startswith("node-") and k.endswith(f".{s}.finetune_whole_model") for k in ran), (s, sorted(ran))
    assert sequential.keys() == side_by_side.keys() and len(sequential) >= 2
    for source, tensors in sequential.items():
        assert tensors.keys() == side_by_side[source].keys()
        for name, t in tensors.items():
            assert torch.equal(t, side_by_side[source][name]), (source, name)
    assert current_client() is None  # the cluster closed with its block


def test_a_node_handing_data_on_in_memory_is_refused_by_name():
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Node, Pipeline

    def first(x):
        return x

    pipe = Pipeline([Node(first, "a", "b", name="one"), Node(first, "b", "c", name="two")])
    cat = DataCatalog({"a": MemoryDataset(1), "b": MemoryDataset()})
    with pytest.raises(ValueError, match="in memory.*: b;"):
        DaskRunner._check_outputs(pipe, cat)
