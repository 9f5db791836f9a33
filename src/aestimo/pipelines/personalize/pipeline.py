"""The personalization stage (registered inside the ``personalize`` chain; tag ``personalization``)."""

from kedro.pipeline import Node, Pipeline

from .nodes import compare_methods, personalize_people, plan_personalization, plot_summary, summarize


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
                    "personalization_plan", "fewshot_splits", "ratings", "expert_predictions", "world_utilities",
                    "image_cache", "backbone_features", "theta0", "task_vectors", "params:personalize",
                ],
                outputs=["user_coefficients", "personalization_metrics", "personalization_timings"],
                name="personalize_people",
            ),
            Node(
                summarize,
                inputs=["personalization_metrics", "params:personalize"],
                outputs=["personalization_summary", "personalization_summary_by_source"],
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
