"""The ``field_models`` pipeline: generic models of the field's methods, before personalization."""

from kedro.pipeline import Node, Pipeline

from aestimo.pipelines.sources import bind

from .nodes import evaluate_attribute_model, train_field_model

INPUTS = ["backbone_features", "ratings", "generic_scores", "generic_splits", "user_profiles", "test_people", "params:field_models"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(bind(train_field_model, "pa_iaa"), inputs=INPUTS, outputs="pa_iaa_model", name="train_pa_iaa"),
            Node(bind(train_field_model, "prompt"), inputs=INPUTS, outputs="prompt_model", name="train_prompt_model"),
            Node(bind(train_field_model, "multi_attribute"), inputs=INPUTS, outputs="multi_attribute_model", name="train_multi_attribute"),
            Node(evaluate_attribute_model, inputs=["multi_attribute_model", *INPUTS], outputs="multi_attribute_metrics",
                 name="evaluate_multi_attribute"),
        ]
    )
