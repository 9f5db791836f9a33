"""Small inputs for the report builders, shared by the report and browser tests."""

from __future__ import annotations

from typing import Any

import polars as pl

SUMMARY = pl.DataFrame({
    "method": ["layerwise_rank", "zero_shot_ensemble", "zero_shot_ava", "mixing_ceiling"] * 2,
    "k": [10] * 4 + [100] * 4,
    "people": [6, 6, 6, 6, 5, 5, 5, 5],
    "srocc_mean": [0.5, 0.4, 0.3, 0.7, 0.6, 0.4, 0.3, 0.8],
    "srocc_ci_low": [0.45, 0.35, 0.25, 0.65, 0.55, 0.35, 0.25, 0.75],
    "srocc_ci_high": [0.55, 0.45, 0.35, 0.75, 0.65, 0.45, 0.35, 0.85],
    "ceiling": [False, False, False, True] * 2,
})
SHOWN = ["layerwise_rank", "zero_shot_ensemble", "mixing_ceiling"]  # the summary's main rows


def report_inputs() -> dict[str, Any]:
    """build_report's arguments, by name: the one place to change when its signature grows."""
    return {
        "ingest_counts": pl.DataFrame({"source": ["ava"], "images": [3]}),
        "world_statistics": pl.DataFrame(),
        "expert_metrics": pl.DataFrame({"expert": ["ava"], "source": ["ava"], "srocc": [0.6]}),
        "task_vector_similarity": pl.DataFrame({"source_a": ["ava"], "source_b": ["ava"], "cosine": [1.0]}),
        "personalization_summary": SUMMARY,
        "personalization_summary_by_source": SUMMARY.with_columns(pl.lit("flickr_aes").alias("source")),
        "personalization_comparisons": pl.DataFrame(
            {"method": ["layerwise_rank"], "versus": ["zero_shot_ensemble"], "k": [10], "wilcoxon_p": [0.04]}
        ),
        "personalization_vs_reference": pl.DataFrame(
            {"method": ["layerwise_rank"], "versus": ["zero_shot_ensemble"], "k": [10], "people": [5], "mean_diff": [0.1],
             "diff_ci_low": [0.05], "diff_ci_high": [0.15], "wins": [4], "losses": [1], "ties": [0], "wilcoxon_p": [0.06]}),
        "personalization_timings": pl.DataFrame({"method": ["layerwise_rank"], "k": [10], "seconds_per_run": [1.5]}),
        "chosen_settings": pl.DataFrame({"value": [0.1], "k": [10], "people": [5], "srocc_mean": [0.35], "chosen": [True]}),
        "long_tail_metrics": pl.DataFrame({
            "expert": ["ava"] * 4, "variant": ["plain"] * 4, "segment": ["all", "low", "middle", "high"],
            "n": [10, 2, 6, 2], "mae": [0.5, 1.1, 0.2, 1.3], "plcc": [0.6] * 4, "srocc": [0.6] * 4,
        }),
        "long_tail_ablation": pl.DataFrame({"expert": ["ava"], "variant": ["round: none"]}),
        "apds_people": pl.DataFrame({"beta": [5.0], "t": [0.3], "mae": [0.4], "chosen": [True]}),
        "self_training_summary": pl.DataFrame({"method": ["instant"], "k": [10], "people": [7], "srocc_mean": [0.3]}),
        "self_training_comparisons": pl.DataFrame({"method": ["instant+self_training"], "versus": ["instant"]}),
        "personalize_params": {"methods": {"layerwise_rank": {"method": "task_vectors"}, "zero_shot_ensemble": {"method": "zero_shot_ensemble"}},
                               "protocol": "browser test"},
    }
