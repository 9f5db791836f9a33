"""Shared test settings: offline and no telemetry (importing aestimo sets both), few threads
(tests may run in parallel)."""

import os

import aestimo  # noqa: F401

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
