"""Project pipelines.

``personalize`` is the main job: the whole chain from raw rating files to
personalized models and the report. ``__default__`` is the same chain. Each
stage is a pipeline of its own too (``ingest``, ``experts``, ``task_vectors``,
``field_models``, ``personalization``, ``self_training``, ``reporting``): after a change of personalization
parameters, ``kedro run --pipeline personalization`` reruns that stage alone.
A rerun of the chain reuses finished experts whose inputs and configuration
are unchanged.

Each stage is a modular pipeline (a Kedro namespace named as the stage, :func:`as_stage`): kedro-viz
shows the chain as its seven stages, each expanding to its nodes, and a node's name starts with its
stage (``personalization.personalize_people``, ``experts.ava.finetune_whole_model``); every node
carries its stage's name as a tag too (``--tags personalization``). Dataset and parameter names
are not prefixed.

The per-source sub-pipelines (experts, task vectors, self-training) are built for the run's own
``experts.sources`` (``--env``, ``--params``): ``pipelines/sources.py``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from aestimo.pipelines import experts, field_models, ingest, personalize, reporting, self_training, task_vectors
from aestimo.pipelines.sources import built_for, configured_sources

STAGES = ("ingest", "experts", "task_vectors", "field_models", "personalization", "self_training", "reporting")


def as_stage(name: str, pipe: Pipeline) -> Pipeline:
    """``pipe`` as the modular pipeline ``name``: its nodes in the namespace ``name`` (nested
    namespaces, the per-source ones, go under it) and tagged ``name``; every dataset and parameter
    keeps its name (all are mapped to themselves), so the catalog and other stages see the same names."""
    params = {d for d in pipe.datasets() if d.startswith("params:") or d == "parameters"}
    return Pipeline(
        pipe,
        namespace=name,
        inputs=pipe.inputs() - params,
        outputs=pipe.all_outputs(),
        parameters=params,
        tags=name,
    )


def register_pipelines() -> dict[str, Pipeline]:
    sources = configured_sources()
    built_for(sources)
    built = {
        "ingest": ingest.create_pipeline(),
        "experts": experts.create_pipeline(sources),
        "task_vectors": task_vectors.create_pipeline(sources),
        "field_models": field_models.create_pipeline(),
        "personalization": personalize.create_pipeline(),
        "self_training": self_training.create_pipeline(sources),
        "reporting": reporting.create_pipeline(),
    }
    pipes: dict[str, Pipeline] = {name: as_stage(name, built[name]) for name in STAGES}
    chain = sum((pipes[name] for name in STAGES), Pipeline([]))
    pipes["personalize"] = chain
    pipes["__default__"] = chain
    return pipes
