"""The ``experts`` pipeline: shared inputs once, then one namespaced sub-pipeline per source."""

from kedro.pipeline import Node, Pipeline

from aestimo.pipelines.sources import bind, configured_sources

from .nodes import (
    build_image_cache,
    build_theta0,
    compute_backbone_features,
    evaluate_experts,
    finetune_expert,
    plot_expert_curves,
    predict_with_experts,
    train_expert_head,
)

SHARED = {"theta0", "backbone_features", "image_cache", "generic_scores", "generic_splits"}


def expert_for(source: str) -> Pipeline:
    """The template instantiated per source (collapsible in kedro-viz)."""
    template = Pipeline(
        [
            Node(
                bind(train_expert_head, source),
                inputs=["theta0", "backbone_features", "generic_scores", "generic_splits", "params:experts"],
                outputs=["expert_head", "stage1_history"],
                name="train_head_on_features",
            ),
            Node(
                bind(finetune_expert, source),
                inputs=["theta0", "expert_head", "image_cache", "generic_scores", "generic_splits", "params:experts"],
                outputs=["expert_weights", "stage2_history"],
                name="finetune_whole_model",
            ),
            Node(
                bind(plot_expert_curves, source),
                inputs=["stage1_history", "stage2_history"],
                outputs="training_curves",
                name="plot_training_curves",
            ),
        ]
    )
    return Pipeline(template, namespace=source, inputs=SHARED, parameters={"params:experts"})


def create_pipeline(sources: list[str] | None = None, **kwargs) -> Pipeline:
    sources = sources or configured_sources()
    shared = Pipeline(
        [
            Node(build_theta0, inputs="params:experts", outputs="theta0", name="build_theta0"),
            Node(build_image_cache, inputs=["images", "generic_splits", "params:experts"], outputs="image_cache", name="build_image_cache"),
            Node(compute_backbone_features, inputs=["theta0", "image_cache", "params:experts"], outputs="backbone_features", name="compute_backbone_features"),
        ]
    )
    per_source = [expert_for(s) for s in sources]
    evaluation = Pipeline(
        [
            Node(
                predict_with_experts,
                inputs=["theta0", "image_cache", "generic_splits", "params:experts", *[f"{s}.expert_weights" for s in sources]],
                outputs="expert_predictions",
                name="predict_with_experts",
            ),
            Node(
                evaluate_experts,
                inputs=["expert_predictions", "generic_scores", "generic_splits"],
                outputs=["expert_metrics", "expert_srocc_heatmap"],
                name="evaluate_experts",
            ),
        ]
    )
    return shared + sum(per_source, Pipeline([])) + evaluation
