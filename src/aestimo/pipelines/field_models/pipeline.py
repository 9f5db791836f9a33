"""The ``field_models`` pipeline: the generic models that methods start from, before personalization.

One training node per method that declares a generic model (``<method>_model``), and one
evaluation node where the method also declares how to measure it (``<method>_metrics``):
the registry says which, so a new method with a generic model needs no change here.
"""

from kedro.pipeline import Node, Pipeline

from aestimo.personalization import generic_models
from aestimo.pipelines.sources import bind

from .nodes import evaluate_field_model, train_field_model

INPUTS = ["backbone_features", "ratings", "generic_scores", "generic_splits", "user_profiles", "test_people", "params:field_models"]


def create_pipeline(**kwargs) -> Pipeline:
    nodes = []
    for name, model in generic_models().items():
        nodes.append(Node(bind(train_field_model, name), inputs=INPUTS, outputs=f"{name}_model", name=f"train_{name}"))
        if model.evaluate is not None:
            nodes.append(Node(bind(evaluate_field_model, name), inputs=[f"{name}_model", *INPUTS], outputs=f"{name}_metrics",
                              name=f"evaluate_{name}"))
    return Pipeline(nodes)
