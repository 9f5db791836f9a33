"""The ``field_models`` pipeline: generic models of the field's methods, before personalization."""

from kedro.pipeline import Node, Pipeline

from .nodes import train_attribute_model, train_personality_model, train_prompt_fusion_model

INPUTS = ["backbone_features", "ratings", "generic_scores", "generic_splits", "user_profiles", "test_people", "params:field_models"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(train_personality_model, inputs=INPUTS, outputs="pa_iaa_model", name="train_pa_iaa"),
            Node(train_prompt_fusion_model, inputs=INPUTS, outputs="prompt_model", name="train_prompt_model"),
            Node(train_attribute_model, inputs=INPUTS, outputs=["multi_attribute_model", "multi_attribute_metrics"],
                 name="train_multi_attribute"),
        ]
    )
