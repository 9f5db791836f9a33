"""Kedro settings for Aestimo (importing ``aestimo`` has already put the hub offline and
telemetry off)."""

from aestimo.hooks import NodeTimingHooks, ParameterValidationHooks

HOOKS = (ParameterValidationHooks(), NodeTimingHooks())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # environments (smoke, full, a user's prod) override single keys, not whole blocks
    "merge_strategy": {"parameters": "soft", "catalog": "soft"},
}
