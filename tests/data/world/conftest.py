from __future__ import annotations

import pytest

from aestimo.data.world import generate_world, smoke_config


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world") / "synthetic"
    manifest = generate_world(root, smoke_config())
    return root, manifest
