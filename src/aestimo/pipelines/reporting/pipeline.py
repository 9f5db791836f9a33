"""The ``reporting`` pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_report, check_report_in_browser


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_report,
                inputs=[
                    "ingest_counts", "world_statistics", "expert_metrics", "task_vector_similarity",
                    "personalization_summary", "personalization_summary_by_source", "personalization_comparisons", "personalization_vs_reference", "personalization_timings",
                    "chosen_settings", "long_tail_metrics", "long_tail_ablation", "apds_people", "self_training_summary",
                    "self_training_comparisons", "params:personalize",
                ],
                outputs="report",
                name="build_report",
            ),
            Node(
                check_report_in_browser,
                inputs=["report", "personalization_summary", "params:reporting"],
                outputs="report_check",
                name="check_report_in_browser",
            ),
        ]
    )
