"""The run's start: a bad parameter or a missing data folder stops it at once, naming the setting."""

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
