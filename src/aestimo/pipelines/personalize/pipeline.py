"""The personalization stage (registered inside the ``personalize`` chain; tag ``personalization``)."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    compare_methods,
    oracle_metrics,
    personalize_people,
    plan_personalization,
    plot_summary,
    summarize,
    zero_shot_metrics,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                plan_personalization,
                inputs=["fewshot_splits", "ratings", "generic_splits", "params:personalize"],
                outputs="personalization_plan",
                name="plan_personalization",
            ),
            Node(
                personalize_people,
                inputs=[
                    "personalization_plan", "fewshot_splits", "ratings", "expert_predictions",
                    "image_cache", "theta0", "task_vectors", "params:personalize",
                ],
                outputs=["user_coefficients", "personalized_metrics", "personalization_timings"],
                name="personalize_people",
            ),
            Node(
                zero_shot_metrics,
                inputs=["personalization_plan", "fewshot_splits", "ratings", "expert_predictions"],
                outputs="zero_shot_metrics",
                name="zero_shot_baselines",
            ),
            Node(
                oracle_metrics,
                inputs=["personalization_plan", "fewshot_splits", "ratings", "world_utilities"],
                outputs="oracle_metrics",
                name="oracle_ceiling",
            ),
            Node(
                summarize,
                inputs=["personalized_metrics", "zero_shot_metrics", "oracle_metrics"],
                outputs=["personalization_metrics", "personalization_summary"],
                name="summarize_personalization",
            ),
            Node(
                compare_methods,
                inputs=["personalization_metrics", "params:personalize"],
                outputs="personalization_comparisons",
                name="compare_methods",
            ),
            Node(plot_summary, inputs="personalization_summary", outputs="personalization_summary_plot", name="plot_personalization_summary"),
        ],
        tags="personalization",
    )
