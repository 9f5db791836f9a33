"""The run's start: a bad parameter or a missing data folder stops it at once, naming the setting;
and what the hooks log: Kedro's own lines only when asked for, the run's progress and notes."""

import re

import pytest
from kedro.framework.session import KedroSession

from aestimo.hooks import InvalidSettings
from tests.kedro_project import inside, new_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = new_project(tmp_path_factory.mktemp("hooks_project"))
    with inside(tmp):
        yield tmp


def _start(tmp, env, runtime_params=None):
    with KedroSession.create(project_path=tmp, env=env, runtime_params=runtime_params) as session:
        session.load_context()


def test_real_environment_with_empty_roots_stops_naming_each_setting(project):
    with pytest.raises(InvalidSettings) as err:
        _start(project, "real")
    msg = str(err.value)
    assert "parameter 'ingest.sources.ava.root' is empty" in msg and "conf/real/parameters_ingest.yml" in msg
    assert "aadb" not in msg  # a disabled source is not read, so its root may stay empty
    assert "Traceback" not in msg


def test_a_missing_folder_is_named(project, tmp_path):
    params = {"ingest": {"sources": {"ava": {"root": str(tmp_path / "nowhere")}}}}
    with pytest.raises(InvalidSettings, match=r"parameter 'ingest.sources.ava.root': folder '.*nowhere' does not exist"):
        _start(project, "real", params)


def test_a_parameter_typo_stops_with_the_closest_name(project):
    with pytest.raises(InvalidSettings, match=r"parameter 'personalize.worker' is not a known name \(did you mean 'workers'\?\)"):
        _start(project, "smoke", {"personalize": {"worker": 2}})
    _start(project, "smoke")  # the smoke environment itself is valid


def test_node_timing_hook_measures_wall_and_cpu_per_node():
    from types import SimpleNamespace
    import time

    from aestimo.hooks import NodeTimingHooks

    hooks = NodeTimingHooks()
    hooks.before_pipeline_run()
    busy, idle = SimpleNamespace(name="busy"), SimpleNamespace(name="idle")
    hooks.before_node_run(busy)
    t0 = time.process_time()
    while time.process_time() - t0 < 0.2:  # 0.2 s of CPU, however long a loaded machine takes
        pass
    hooks.after_node_run(busy)
    hooks.before_node_run(idle)
    time.sleep(0.2)
    hooks.after_node_run(idle)
    (wall_b, cpu_b), (wall_i, cpu_i) = hooks.seconds["busy"], hooks.seconds["idle"]
    assert cpu_b >= 0.2 and wall_b >= 0.9 * cpu_b  # a busy node spends CPU (one thread: no more than its wall time)
    assert wall_i >= 0.2 and cpu_i < 0.1  # a waiting one does not


def test_a_failed_node_reports_no_time():
    from types import SimpleNamespace

    from aestimo.hooks import NodeTimingHooks

    hooks = NodeTimingHooks()
    hooks.before_pipeline_run()
    bad = SimpleNamespace(name="bad")
    hooks.before_node_run(bad)
    hooks.on_node_error(bad)
    hooks.after_node_run(bad)  # not called by Kedro after an error; harmless if it were
    assert "bad" not in hooks.seconds and not hooks._start


def test_timing_summary_adds_up_per_stage_and_lists_the_slowest_first():
    from aestimo.hooks import timing_summary

    seconds = {"a": (10.0, 19.0), "b": (30.0, 31.0), "c": (5.0, 1.0), "d": (1.0, 1.0)}
    lines = timing_summary(seconds, {"a": "experts", "b": "experts", "c": "personalization"}, slowest=2)
    assert "46 s in all" in lines[0]
    stages = {ln.split()[0]: ln.split() for ln in lines[1:4]}
    assert stages["experts"][1:] == ["40.0", "/", "50.0"]
    assert stages["personalization"][1:] == ["5.0", "/", "1.0"]
    assert stages["other"][1:] == ["1.0", "/", "1.0"]  # a node no stage holds
    assert lines[-2:] == ["  b: 30.0 / 31.0", "  a: 10.0 / 19.0"]


def test_children_cpu_counts_a_running_child_and_then_the_same_child_reaped():
    """A worker kept warm between nodes has not been reaped: its CPU counts while it runs, and
    reaping it moves that CPU to RUSAGE_CHILDREN without counting it twice."""
    import subprocess
    import sys

    from aestimo.hooks import _children_cpu, _live_children_cpu

    before = _children_cpu()
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\nprint(flush=True)\nsys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()  # it has burnt its CPU and now waits
        running = _live_children_cpu()
        assert running >= 0.4
        during = _children_cpu()
    finally:
        child.communicate("")
    after = _children_cpu()
    assert during - before >= 0.4
    assert abs(after - during) < 0.2  # the same seconds, now from the reaped child


def test_kedro_lines_come_back_with_aestimo_verbose_and_go_again_without(monkeypatch):
    import logging

    from aestimo.hooks import LoggingHooks

    kedro = logging.getLogger("kedro")
    configured = kedro.level
    kedro.setLevel(logging.WARNING)  # as conf/logging.yml configures it
    try:
        hooks = LoggingHooks()
        monkeypatch.delenv("AESTIMO_VERBOSE", raising=False)
        hooks.after_context_created()
        assert kedro.level == logging.WARNING
        monkeypatch.setenv("AESTIMO_VERBOSE", "1")
        hooks.after_context_created()
        assert kedro.level == logging.INFO
        monkeypatch.setenv("AESTIMO_VERBOSE", "0")
        hooks.after_context_created()
        assert kedro.level == logging.WARNING
    finally:
        kedro.setLevel(configured)


def test_the_sources_note_is_a_line_of_the_run_not_of_every_session(project, caplog):
    """`aestimo score` opens a session too: the note about sources without an expert is for runs."""
    import logging

    from kedro.framework.project import settings

    from aestimo.hooks import ParameterValidationHooks

    caplog.set_level(logging.INFO, logger="aestimo")
    _start(project, "smoke")  # the smoke world has people sources without an expert
    assert "ingest sources without an expert" not in caplog.text
    hooks = next(h for h in settings.HOOKS if isinstance(h, ParameterValidationHooks))
    hooks.before_pipeline_run()
    assert "ingest sources without an expert" in caplog.text


def test_node_timing_says_how_many_nodes_are_done(caplog):
    import logging
    import time
    from types import SimpleNamespace

    from aestimo.hooks import NodeTimingHooks

    caplog.set_level(logging.INFO, logger="aestimo")
    hooks = NodeTimingHooks()
    slow, fast = SimpleNamespace(name="slow"), SimpleNamespace(name="fast")
    hooks.before_pipeline_run(SimpleNamespace(nodes=[slow, fast, SimpleNamespace(name="other")]))
    assert "running 3 nodes" in caplog.text
    hooks.before_node_run(fast)
    hooks.after_node_run(fast)
    hooks.before_node_run(slow)
    time.sleep(1.05)
    hooks.after_node_run(slow)
    assert re.search(r"node slow took 1\.\d s \(CPU \d+\.\d s\); 2 of 3 nodes done", caplog.text)
    assert "node fast" not in caplog.text  # under a second: no line of its own


def test_the_cluster_hook_opens_one_cluster_for_the_people_stages_and_closes_it_with_the_run():
    """Held by the hook, not by module state: started before the first node that shares work out
    (tagged so; not before an expert's), reused by every later node, closed when the run ends."""
    from types import SimpleNamespace

    from aestimo.hooks import ClusterHooks
    from aestimo.personalization.running.cluster import current_client

    class Catalog:
        def load(self, name):
            assert name == "params:personalize"
            return {"methods": {"instant": {"method": "instant"}}, "workers": 2}

    hooks = ClusterHooks()
    hooks.before_node_run(SimpleNamespace(tags={"experts"}), Catalog())
    assert hooks.cluster is None and current_client() is None
    hooks.before_node_run(SimpleNamespace(tags={"personalization", "shares_work"}), Catalog())
    cluster = hooks.cluster
    try:
        assert cluster is not None and current_client() is cluster.client
        assert len(cluster.client.scheduler_info()["workers"]) == 2
        hooks.before_node_run(SimpleNamespace(tags={"self_training", "shares_work"}), Catalog())
        assert hooks.cluster is cluster  # one cluster for the whole run
    finally:
        hooks.after_pipeline_run()
    assert hooks.cluster is None and current_client() is None


def test_the_cluster_hook_starts_nothing_for_one_worker():
    from types import SimpleNamespace

    from aestimo.hooks import ClusterHooks

    class Catalog:
        def load(self, name):
            return {"methods": {"instant": {"method": "instant"}}, "workers": 0}

    hooks = ClusterHooks()
    hooks.before_node_run(SimpleNamespace(tags={"personalization", "shares_work"}), Catalog())
    assert hooks.cluster is None


def test_no_module_keeps_pool_state():
    """The workers' lifetime is an object's (the hook's cluster), never a module global."""
    import ast

    from tests.kedro_project import ROOT

    for path in (ROOT / "src" / "aestimo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Global):
                assert not any(w in name.upper() for name in node.names for w in ("POOL", "WARM", "CLIENT", "CLUSTER")), \
                    f"{path}: global {node.names}"
