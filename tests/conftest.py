"""Shared test settings: offline and no telemetry (importing aestimo sets both), few threads
(tests may run in parallel)."""

import os

import pytest

import aestimo  # noqa: F401

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module of small networks: faster on a shared CPU, and their
    numbers do not depend on it (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
