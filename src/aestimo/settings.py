"""Kedro settings for Aestimo.

Runs never wait on the network: the Hugging Face hub is put offline and Kedro
telemetry is disabled before anything else is imported.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

from aestimo.hooks import ParameterValidationHooks  # noqa: E402

HOOKS = (ParameterValidationHooks(),)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # environments (smoke, full, a user's prod) override single keys, not whole blocks
    "merge_strategy": {"parameters": "soft", "catalog": "soft"},
}
