"""Layer-wise against layer-agnostic λ on more held-out people than the default protocol.

The default protocol (2 people per source) is sized for the chain's time
budget, so its k = 10 ordering is a coin flip (docs/results.md). This script
reruns only the personalization stage, with the pipeline's own nodes, on
``--people`` held-out people per source, after a default run
(``kedro run --pipeline personalize``) has written θ0, τ and the experts'
predictions. It writes nothing; it prints mean SROCC per source and method and
the paired comparison (wins, Wilcoxon p).

    python experiments/compare_on_more_people.py --people 10 --k 10
    python experiments/compare_on_more_people.py --people 8 --k 100 --steps 50
    python experiments/compare_on_more_people.py --people 10 --k 10 --batch-size 5   # a diagnostic, not the papers' setting
    python experiments/compare_on_more_people.py --people 10 --k 10 --dropout 0.5    # λ trained with the head's dropout on

About 11 s per person and method at k = 10 (28 s at k = 100) per worker on this 2-core machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from aestimo.evaluation import people
from aestimo.personalization import generic_models
from aestimo.pipelines.personalize.nodes import personalize_people, plan_personalization

INPUTS = [
    "fewshot_splits", "ratings", "generic_splits", "expert_predictions", "world_utilities", "image_cache", "backbone_features",
    "theta0", "task_vectors", "chosen_settings", "user_profiles", *(f"{name}_model" for name in generic_models()),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=10, help="held-out people per source")
    ap.add_argument("--k", type=int, default=10, choices=[10, 100])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="default: the environment's personalize.defaults.steps")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the environment's personalize.defaults.batch_size")
    ap.add_argument("--dropout", type=float, default=None, help="default: the environment's personalize.defaults.dropout")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--env", default=None, help="Kedro environment whose outputs to read (default: base + local)")
    ap.add_argument("--project", type=Path, default=Path(__file__).resolve().parents[1])
    args = ap.parse_args(argv)

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project, env=args.env) as session:
        context = session.load_context()
        catalog, params = context.catalog, dict(context.params["personalize"])
    data = {name: catalog.load(name) for name in INPUTS}

    params.update(
        people=None,
        max_people_per_source=args.people,
        repeats=args.repeats,
        ks=[args.k],
        workers=args.workers,
        batched=False,
        methods={
            "layerwise_rank": {"method": "task_vectors", "loss": "rank", "layerwise": True},
            "layeragnostic_rank": {"method": "task_vectors", "loss": "rank", "layerwise": False},
        },
        deploy_method="layerwise_rank",
    )
    defaults = params["defaults"] = dict(params.get("defaults") or {})
    for name in ("steps", "batch_size", "dropout"):  # given on the command line, or the environment's value
        if getattr(args, name) is not None:
            defaults[name] = getattr(args, name)

    plan = plan_personalization(data["fewshot_splits"], data["ratings"], data["generic_splits"], params)
    _, metrics, _, _, _ = personalize_people(
        plan, data["fewshot_splits"], data["ratings"], data["expert_predictions"], data["world_utilities"],
        data["image_cache"], data["backbone_features"], data["theta0"], data["task_vectors"], data["chosen_settings"],
        data["user_profiles"], params, *(data[f"{name}_model"] for name in generic_models()),
    )
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=160):
        print(f"k = {args.k}, {args.people} people per source, {args.repeats} repeat(s), {defaults['steps']} steps, batch {defaults['batch_size']}")
        print(metrics.group_by("source", "method").agg(pl.col("srocc").mean(), pl.len().alias("runs")).sort("source", "method"))
        print(people.paired(metrics, "layerwise_rank", "layeragnostic_rank"))


if __name__ == "__main__":
    main()
