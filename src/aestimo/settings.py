"""Kedro settings for Aestimo (importing ``aestimo`` has already put the hub offline and
telemetry off)."""

import warnings

from aestimo.hooks import LoggingHooks, NodeTimingHooks, ParameterValidationHooks, ClusterHooks

# Warnings at every start that nobody running this project can act on:
# Kedro's config loader calls an OmegaConf function that OmegaConf has deprecated;
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated", category=UserWarning)
# the experts' nodes read '<source>.<table>' datasets on purpose (one namespace per source);
warnings.filterwarnings("ignore", message=r"One or more dataset names contain '\.' characters", category=UserWarning)
# the docs' `kedro run --pipeline NAME`, which Kedro 1.x spells --pipelines (both run the same);
warnings.filterwarnings("ignore", message=r"Option '--pipeline' is deprecated", category=DeprecationWarning)
# tqdm.auto imported in a notebook without ipywidgets (the project's bars are for runs, not notebooks)
warnings.filterwarnings("ignore", message=r"IProgress not found")

HOOKS = (LoggingHooks(), ParameterValidationHooks(), NodeTimingHooks(), ClusterHooks())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # environments (smoke, full, a user's prod) override single keys, not whole blocks
    "merge_strategy": {"parameters": "soft", "catalog": "soft"},
}
