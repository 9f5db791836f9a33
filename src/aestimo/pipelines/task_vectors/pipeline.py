"""The ``task_vectors`` pipeline."""

from kedro.pipeline import Node, Pipeline

from aestimo.pipelines.sources import configured_sources

from .nodes import build_task_vectors, plot_norms, plot_similarity, task_vector_norms, task_vector_similarity


def create_pipeline(sources: list[str] | None = None, **kwargs) -> Pipeline:
    sources = sources or configured_sources()
    return Pipeline(
        [
            Node(
                build_task_vectors,
                inputs=["theta0", *[f"{s}.expert_weights" for s in sources]],
                outputs="task_vectors",
                name="build_task_vectors",
            ),
            Node(task_vector_norms, inputs=["task_vectors", "theta0"], outputs="task_vector_norms", name="task_vector_norms"),
            Node(task_vector_similarity, inputs="task_vectors", outputs="task_vector_similarity", name="task_vector_similarity"),
            Node(plot_similarity, inputs="task_vector_similarity", outputs="task_vector_similarity_heatmap", name="plot_task_vector_similarity"),
            Node(plot_norms, inputs="task_vector_norms", outputs="task_vector_norms_plot", name="plot_task_vector_norms"),
        ]
    )
