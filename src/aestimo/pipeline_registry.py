"""Project pipelines.

``personalize`` is the main job: the whole chain from raw rating files to
personalized models and the report. ``__default__`` is the same chain. Each
stage is a pipeline of its own too (``ingest``, ``experts``, ``task_vectors``,
``field_models``, ``personalization``, ``self_training``, ``reporting``): after a change of personalization
parameters, ``kedro run --pipeline personalization`` reruns that stage alone.
A rerun of the chain reuses finished experts whose inputs and configuration
are unchanged.

The per-source sub-pipelines (experts, task vectors, self-training) are built for the run's own
``experts.sources`` (``--env``, ``--params``): ``pipelines/sources.py``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from aestimo.pipelines import experts, field_models, ingest, personalize, reporting, self_training, task_vectors
from aestimo.pipelines.sources import built_for, configured_sources


def register_pipelines() -> dict[str, Pipeline]:
    sources = configured_sources()
    built_for(sources)
    pipes: dict[str, Pipeline] = {
        "ingest": ingest.create_pipeline(),
        "experts": experts.create_pipeline(sources),
        "task_vectors": task_vectors.create_pipeline(sources),
        "field_models": field_models.create_pipeline(),
        "personalization": personalize.create_pipeline(),
        "self_training": self_training.create_pipeline(sources),
        "reporting": reporting.create_pipeline(),
    }
    chain = (
        pipes["ingest"] + pipes["experts"] + pipes["task_vectors"] + pipes["field_models"] + pipes["personalization"]
        + pipes["self_training"] + pipes["reporting"]
    )
    pipes["personalize"] = chain
    pipes["__default__"] = chain
    return pipes
