"""The personalization stage (registered as ``personalization`` and inside the ``personalize`` chain; the
registry puts its nodes in the namespace and tag ``personalization``)."""

from kedro.pipeline import Node, Pipeline

from aestimo.personalization import generic_models
from aestimo.personalization.running.cluster import SHARES_WORK

from .new_people import personalize_new_people
from .nodes import choose_settings, compare_methods, compare_with_reference, personalize_people, plan_personalization, plot_best_gains, plot_cost, plot_gains, plot_summary, summarize


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
                choose_settings,
                inputs=[
                    "ratings", "test_people", "generic_splits", "expert_predictions", "image_cache", "backbone_features",
                    "theta0", "task_vectors", "params:personalize",
                ],
                outputs="chosen_settings",
                name="choose_settings",
                tags=SHARES_WORK,
            ),
            Node(
                personalize_people,
                inputs=[
                    "personalization_plan", "fewshot_splits", "ratings", "expert_predictions", "world_utilities",
                    "image_cache", "backbone_features", "theta0", "task_vectors", "chosen_settings", "user_profiles",
                    "params:personalize", *(f"{name}_model" for name in generic_models()),
                ],
                outputs=["user_coefficients", "personalization_metrics", "personalization_timings", "shared_features", "deployed_coefficients"],
                name="personalize_people",
                tags=SHARES_WORK,
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
            Node(
                compare_with_reference,
                inputs=["personalization_metrics", "params:personalize"],
                outputs="personalization_vs_reference",
                name="compare_with_reference",
            ),
            Node(
                personalize_new_people,
                inputs=["new_people_ratings", "theta0", "task_vectors", "chosen_settings", "params:personalize"],
                outputs="new_people_coefficients",
                name="personalize_new_people",
            ),
            Node(plot_summary, inputs="personalization_summary", outputs="personalization_summary_plot", name="plot_personalization_summary"),
            Node(plot_gains, inputs=["personalization_metrics", "params:personalize"], outputs="personalization_gains_plot",
                 name="plot_personalization_gains"),
            Node(plot_best_gains, inputs=["personalization_vs_reference", "personalization_metrics", "params:personalize"],
                 outputs="personalization_best_gains_plot", name="plot_best_method_gains"),
            Node(plot_cost, inputs=["personalization_summary", "personalization_timings", "params:personalize"],
                 outputs="personalization_cost_plot", name="plot_personalization_cost"),
        ],
    )
