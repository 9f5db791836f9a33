"""``aestimo score --user <id> <image or folder> ...``: score images for one person."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    parser = argparse.ArgumentParser(prog="aestimo", description="Personalized image aesthetic scores.")
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="score images for one personalized person")
    sc.add_argument("paths", nargs="+", help="image files or folders")
    sc.add_argument("--user", required=True, help="person id: source:rater_id, or the bare rater id")
    sc.add_argument("--project", default=".", help="the Aestimo project folder (default: .)")
    sc.add_argument("--env", default=None, help="Kedro environment whose catalog holds the models")
    sc.add_argument("--method", default=None, help="personalization method (default: the run's deploy_method)")
    sc.add_argument("--k", type=int, default=None, help="which k's coefficients (default: the largest)")
    sc.add_argument("--repeat", type=int, default=0)
    sc.add_argument("--output", "-o", default=None, help="write the table as CSV here instead of printing it")
    args = parser.parse_args(argv)

    from aestimo.scoring import UnknownPersonError, score

    try:
        result = score(args.paths, user=args.user, project_path=args.project, env=args.env, method=args.method, k=args.k, repeat=args.repeat)
    except (UnknownPersonError, KeyError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
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
