"""The ``ingest`` pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    compute_world_statistics,
    ensure_world,
    ingest_counts,
    make_fewshot_splits,
    make_generic_splits,
    plot_score_histograms,
    read_sources,
    select_test_people,
    write_ingest_report,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                ensure_world,
                inputs="params:ingest",
                outputs=["world_manifest", "world_image_latents", "world_raters", "world_utilities"],
                name="ensure_world",
            ),
            Node(
                read_sources,
                inputs=["params:ingest", "world_manifest"],
                outputs=["images", "ratings", "generic_scores", "user_profiles", "official_splits", "ingest_dropped_rows"],
                name="read_sources",
            ),
            Node(select_test_people, inputs=["ratings", "params:ingest"], outputs="test_people", name="select_test_people"),
            Node(
                make_generic_splits,
                inputs=["images", "ratings", "official_splits", "test_people", "params:ingest"],
                outputs="generic_splits",
                name="make_generic_splits",
            ),
            Node(
                make_fewshot_splits,
                inputs=["ratings", "test_people", "params:ingest"],
                outputs=["fewshot_splits", "fewshot_skipped"],
                name="make_fewshot_splits",
            ),
            Node(
                ingest_counts,
                inputs=["images", "ratings", "generic_splits", "test_people", "fewshot_skipped", "ingest_dropped_rows"],
                outputs="ingest_counts",
                name="ingest_counts",
            ),
            Node(plot_score_histograms, inputs="ratings", outputs="score_histograms", name="plot_score_histograms"),
            Node(
                compute_world_statistics,
                inputs=["params:ingest", "world_manifest", "ingest_dropped_rows"],
                outputs="world_statistics",
                name="compute_world_statistics",
            ),
            Node(
                write_ingest_report,
                inputs=["ingest_counts", "world_statistics", "fewshot_skipped"],
                outputs="ingest_report",
                name="write_ingest_report",
            ),
        ]
    )
