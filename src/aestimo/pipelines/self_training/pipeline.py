"""The ``self_training`` pipeline: per expert, APDS's (β, t) on its validation split, pseudo-labels of
its unlabelled pool and one more training round (a namespaced template, collapsible in kedro-viz); the
refreshed experts' task vectors; the long-tail evaluation and ablation; person-level self-training."""

from kedro.pipeline import Node, Pipeline

from aestimo.pipelines.sources import bind, configured_sources
from aestimo.models.merged import task_vectors_of
from aestimo.personalization.running.cluster import SHARES_WORK

from .nodes import (
    ablate_long_tail,
    choose_people_pseudo_labelling,
    choose_pseudo_labelling,
    evaluate_long_tail,
    plot_long_tail,
    plot_pseudo_labelling,
    pseudo_label_pool,
    self_train_expert,
    self_train_people,
    summarize_self_training,
)

SHARED = {"theta0", "image_cache", "generic_scores", "generic_splits"}
PARAMS = "params:self_training"


def expert_round(source: str) -> Pipeline:
    template = Pipeline(
        [
            Node(
                bind(choose_pseudo_labelling, source),
                inputs=["theta0", "expert_weights", "image_cache", "generic_scores", "generic_splits", PARAMS],
                outputs="apds_surface",
                name="choose_pseudo_labelling",
            ),
            Node(
                bind(pseudo_label_pool, source),
                inputs=["theta0", "expert_weights", "image_cache", "generic_scores", "generic_splits", "apds_surface", PARAMS],
                outputs="pseudo_labels",
                name="pseudo_label_pool",
            ),
            Node(
                bind(self_train_expert, source),
                inputs=["theta0", "expert_weights", "image_cache", "generic_scores", "generic_splits", "pseudo_labels", PARAMS],
                outputs=["self_trained_weights", "self_training_history"],
                name="self_train_expert",
            ),
        ]
    )
    # unlisted names take the namespace: expert_weights is the source's own expert, "<source>.expert_weights"
    return Pipeline(template, namespace=source, inputs=SHARED, parameters={PARAMS})


def create_pipeline(sources: list[str] | None = None, **kwargs) -> Pipeline:
    sources = sources or configured_sources()
    per_source = sum((expert_round(s) for s in sources), Pipeline([]))
    plain = [f"{s}.expert_weights" for s in sources]
    refreshed = [f"{s}.self_trained_weights" for s in sources]
    surfaces = [f"{s}.apds_surface" for s in sources]
    shared = Pipeline(
        [
            Node(task_vectors_of, inputs=["theta0", *refreshed], outputs="self_trained_task_vectors", name="build_self_trained_task_vectors"),
            Node(choose_people_pseudo_labelling, inputs=surfaces, outputs="apds_people", name="choose_people_pseudo_labelling"),
            Node(
                evaluate_long_tail,
                inputs=["theta0", "image_cache", "generic_scores", "generic_splits", PARAMS, *plain, *refreshed],
                outputs=["long_tail_metrics", "long_tail_predictions"],
                name="evaluate_long_tail",
            ),
            Node(
                ablate_long_tail,
                inputs=["theta0", "image_cache", "generic_scores", "generic_splits", PARAMS, *plain, *[f"{s}.pseudo_labels" for s in sources]],
                outputs="long_tail_ablation",
                name="ablate_long_tail",
            ),
            Node(plot_long_tail, inputs=["long_tail_predictions", "long_tail_metrics", PARAMS],
                 outputs=["long_tail_scatter", "long_tail_segment_mae_plot"], name="plot_long_tail"),
            Node(plot_pseudo_labelling, inputs=["apds_people", PARAMS, *surfaces], outputs=["apds_heatmap", "apds_people_heatmap"],
                 name="plot_pseudo_labelling"),
            Node(
                self_train_people,
                inputs=[
                    "personalization_plan", "fewshot_splits", "ratings", "expert_predictions", "world_utilities", "image_cache",
                    "backbone_features", "theta0", "task_vectors", "self_trained_task_vectors", "chosen_settings", "apds_people",
                    "personalization_metrics", "shared_features", "params:personalize", PARAMS,
                ],
                outputs=["self_trained_user_coefficients", "self_training_metrics", "self_training_timings"],
                name="self_train_people",
                tags=SHARES_WORK,
            ),
            Node(summarize_self_training, inputs=["self_training_metrics", "params:personalize", PARAMS],
                 outputs=["self_training_summary", "self_training_comparisons"], name="summarize_self_training"),
        ]
    )
    return per_source + shared
