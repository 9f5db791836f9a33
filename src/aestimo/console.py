"""The ``aestimo`` command line, and finding a person's files in a Kedro project.

``aestimo score --user <id> <image or folder> ...`` scores images for one
personalized person of the project in the current folder (or ``--project``);
``--theta0 --task-vectors --coefficients`` score from those files, anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aestimo.personalization.keys import UnknownPersonError, match_person, split_person_key
from aestimo.scoring import PersonalScorer


def project_scorer(
    user: str, project_path: str | Path = ".", env: str | None = None, method: str | None = None, k: int | None = None, repeat: int = 0
) -> PersonalScorer:
    """The scorer of ``user`` (``source:rater_id`` or a bare id) among a project's personalized people."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project_path = Path(project_path).resolve()
    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env) as session:
        catalog = session.load_context().catalog
    partitions = catalog.load("user_coefficients")
    key = match_person(user, partitions)
    source = split_person_key(key)[0]
    return PersonalScorer.from_bundles(
        catalog.load("theta0"), catalog.load("task_vectors"), partitions[key](), method, k, repeat, source
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aestimo", description="Personalized image aesthetic scores.")
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="score images for one personalized person")
    sc.add_argument("paths", nargs="+", help="image files or folders")
    who = sc.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="person id in the project: source:rater_id, or the bare rater id")
    who.add_argument("--coefficients", help="a person's coefficients file (with --theta0 and --task-vectors)")
    sc.add_argument("--theta0", help="θ0's safetensors file (with --coefficients)")
    sc.add_argument("--task-vectors", help="the task vectors' safetensors file (with --coefficients)")
    sc.add_argument("--project", default=".", help="the Aestimo project folder (default: .)")
    sc.add_argument("--env", default=None, help="Kedro environment whose catalog holds the models")
    sc.add_argument("--method", default=None, help="personalization method (default: the run's deploy_method)")
    sc.add_argument("--k", type=int, default=None, help="which k's coefficients (default: the largest)")
    sc.add_argument("--repeat", type=int, default=0)
    sc.add_argument("--output", "-o", default=None, help="write the table as CSV here instead of printing it")
    args = parser.parse_args(argv)

    from aestimo.scoring import score_images

    try:
        if args.coefficients:
            if not (args.theta0 and args.task_vectors):
                parser.error("--coefficients needs --theta0 and --task-vectors")
            scorer = PersonalScorer.from_files(args.theta0, args.task_vectors, args.coefficients, args.method, args.k, args.repeat)
        else:
            scorer = project_scorer(args.user, args.project, args.env, args.method, args.k, args.repeat)
    except (UnknownPersonError, KeyError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = score_images(scorer, args.paths)
    for e in result.errors:
        print(f"error: {e}", file=sys.stderr)
    if args.output:
        result.table.write_csv(args.output)
        print(f"wrote {result.table.height} scores to {args.output}", file=sys.stderr)
    else:
        result.table.write_csv(sys.stdout)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
