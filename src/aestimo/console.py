"""The ``aestimo`` command line, and finding a person's files in a Kedro project.

``aestimo score --user <id> <image or folder> ...`` scores images for one
personalized person of the project in the current folder (or ``--project``);
``--theta0 --task-vectors --coefficients`` score from those files, anywhere.

The scores table is the only thing written to stdout: Kedro's log lines,
warnings and error messages go to stderr, so ``aestimo score ... > scores.csv``
is a clean CSV. The exit codes are listed in :data:`EXIT_CODES` (and in
``aestimo score --help``).

This module is imported by ``conf/logging.yml`` (:data:`STDERR_CONSOLE`), so
it imports nothing heavy at the top.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from aestimo.scoring import PersonalScorer

#: Where the project's log lines go (``conf/logging.yml``'s rich handler): stderr, never stdout.
STDERR_CONSOLE = Console(stderr=True)

OK, SOME_FAILED, USAGE, CRASH = 0, 1, 2, 3
EXIT_CODES = f"""\
exit codes:
  {OK}  every image was scored
  {SOME_FAILED}  some images could not be scored (missing, not an image): each is
     named on stderr; the others are scored
  {USAGE}  nothing scored: bad arguments, unknown person, not an Aestimo
     project or environment, or missing or unreadable model files
  {CRASH}  unexpected error: one line on stderr (the traceback with --debug,
     or with AESTIMO_DEBUG=1)
"""

_API_HINT = "pass project= the project folder, or theta0=, task_vectors= and coefficients= paths"
_CLI_HINT = "pass --project the project folder, or --theta0, --task-vectors and --coefficients"


class NotAProjectError(ValueError):
    """The folder given as the project is not an Aestimo Kedro project."""

    def __init__(self, path: Path, reason: str, hint: str = _API_HINT):
        self.path, self.reason, self.hint = path, reason, hint
        super().__init__(f"'{path}' is not an Aestimo project ({reason}); {hint}")


def project_root(project_path: str | Path = ".") -> Path:
    """``project_path`` resolved, once it is known to be an Aestimo project
    (a ``pyproject.toml`` with ``[tool.kedro] package_name = "aestimo"``); else :class:`NotAProjectError`."""
    path = Path(project_path).expanduser().resolve()
    if not path.is_dir():
        raise NotAProjectError(path, "no such folder")
    pyproject = path / "pyproject.toml"
    try:
        kedro = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("kedro")
    except (OSError, tomllib.TOMLDecodeError):
        kedro = None
    if not isinstance(kedro, dict):
        raise NotAProjectError(path, "no pyproject.toml with [tool.kedro]")
    if kedro.get("package_name") != "aestimo":
        raise NotAProjectError(path, f"its [tool.kedro] package is {kedro.get('package_name')!r}, not 'aestimo'")
    return path


def project_scorer(
    user: str, project_path: str | Path = ".", env: str | None = None, method: str | None = None, k: int | None = None, repeat: int = 0
) -> PersonalScorer:
    """The scorer of ``user`` (``source:rater_id`` or a bare id) among a project's personalized people.

    Raises :class:`NotAProjectError` (a ``ValueError``) when ``project_path`` is not an Aestimo
    project or ``env`` not one of its environments, :class:`~aestimo.personalization.keys.UnknownPersonError`
    for an unknown person and ``FileNotFoundError`` when the project's run has not written the models yet.
    """
    project_path = project_root(project_path)  # before Kedro is imported: a clear message, no Kedro output

    from kedro.config import MissingConfigException
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.io import DatasetError

    from aestimo.personalization.keys import match_person, split_person_key
    from aestimo.scoring import PersonalScorer

    bootstrap_project(project_path)
    try:
        with KedroSession.create(project_path=project_path, env=env) as session:
            catalog = session.load_context().catalog
    except MissingConfigException as err:
        if env is None:
            raise ValueError(f"the configuration of '{project_path}' is incomplete: {err}") from err
        conf = project_path / "conf"
        envs = sorted(p.name for p in conf.iterdir() if p.is_dir()) if conf.is_dir() else []
        raise ValueError(f"no Kedro environment '{env}' in {conf} (environments: {', '.join(envs)})") from err

    def load(name: str):
        try:
            return catalog.load(name)
        except DatasetError as err:
            run = "kedro run --pipeline personalize" + (f" --env {env}" if env else "")
            raise FileNotFoundError(
                f"{err} (the models of '{project_path}', environment {env or 'local'}, are missing or unreadable: "
                f"run `{run}` there first)"
            ) from err

    partitions = load("user_coefficients")
    key = match_person(user, partitions)
    source = split_person_key(key)[0]
    return PersonalScorer.from_bundles(load("theta0"), load("task_vectors"), partitions[key](), method, k, repeat, source)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aestimo", description="Personalized image aesthetic scores.", epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser(
        "score", help="score images for one personalized person",
        description="Score images for one personalized person. The path,score table goes to stdout "
        "(or --output); log lines, warnings and errors go to stderr.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    sc.add_argument("--debug", action="store_true", help="on an unexpected error, print the full traceback")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (:data:`EXIT_CODES`). Bad arguments exit 2 through argparse."""
    parser = _parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("AESTIMO_DEBUG", "").lower() not in ("", "0", "false", "no")
    table_out = sys.stdout
    try:
        # Whatever writes to stdout while the scorer is built and the images scored (Kedro's
        # logging configured from any logging.yml, warnings, a library's print) lands on stderr.
        with contextlib.redirect_stdout(sys.stderr):
            return _score(parser, args, table_out)
    except Exception as err:  # noqa: BLE001  (anything unexpected: one line, exit 3)
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        message = " ".join(f"{type(err).__name__}: {err}".split())
        hint = "" if debug else " (rerun with --debug or AESTIMO_DEBUG=1 for the traceback)"
        print(f"error: {message}{hint}", file=sys.stderr)
        return CRASH


def _score(parser: argparse.ArgumentParser, args: argparse.Namespace, table_out) -> int:
    from aestimo.bundle import BundleError
    from aestimo.personalization.keys import UnknownPersonError
    from aestimo.scoring import PersonalScorer, score_images

    if args.coefficients and not (args.theta0 and args.task_vectors):
        parser.error("--coefficients needs --theta0 and --task-vectors")
    if args.user and (args.theta0 or args.task_vectors):
        parser.error("--theta0 and --task-vectors go with --coefficients; --user finds the files in the project")
    if args.output and not Path(args.output).expanduser().resolve().parent.is_dir():
        parser.error(f"--output {args.output}: its folder does not exist")
    try:
        if args.coefficients:
            scorer = PersonalScorer.from_files(args.theta0, args.task_vectors, args.coefficients, args.method, args.k, args.repeat)
        else:
            try:
                scorer = project_scorer(args.user, args.project, args.env, args.method, args.k, args.repeat)
            except NotAProjectError as err:
                raise NotAProjectError(err.path, err.reason, _CLI_HINT) from None
    except (UnknownPersonError, NotAProjectError, BundleError, KeyError, FileNotFoundError, ValueError) as err:
        message = str(err)
        if isinstance(err, KeyError) and not isinstance(err, UnknownPersonError):
            message = str(err.args[0]) if err.args else message  # not the repr KeyError's str() gives
            if args.coefficients and " " not in message:  # a bare missing key: files swapped, or not Aestimo's
                message = (f"{message} (are --theta0, --task-vectors and --coefficients θ0, the task vectors "
                           "and a person's coefficients, written by one run?)")
        print("error: " + " ".join(message.split()), file=sys.stderr)  # one line
        return USAGE
    result = score_images(scorer, args.paths)
    for e in result.errors:
        print(f"error: {e}", file=sys.stderr)
    if args.output:
        result.table.write_csv(args.output)
        print(f"wrote {result.table.height} scores to {args.output}", file=sys.stderr)
    else:
        result.table.write_csv(table_out)
        table_out.flush()
    return SOME_FAILED if result.errors else OK


if __name__ == "__main__":
    sys.exit(main())
