"""Kedro settings for Aestimo (importing ``aestimo`` has already put the hub offline and
telemetry off)."""

import warnings

from aestimo.hooks import NodeTimingHooks, ParameterValidationHooks, WorkerPoolHooks

# Kedro's config loader calls an OmegaConf function that OmegaConf has deprecated: a warning at every
# start that nobody running this project can act on
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)

HOOKS = (ParameterValidationHooks(), NodeTimingHooks(), WorkerPoolHooks())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # environments (smoke, full, a user's prod) override single keys, not whole blocks
    "merge_strategy": {"parameters": "soft", "catalog": "soft"},
}
