"""The ``aestimo`` command line, and finding a person's files in a Kedro project.

``aestimo score --user <id> <image or folder> ...`` scores images for one
personalized person of the project in the current folder (or ``--project``);
``--theta0 --task-vectors --coefficients`` score from those files, anywhere.
``aestimo personalize RATINGS.csv --name NAME`` personalizes a new person from
their own ratings file into the project's ``user_coefficients``, as ``own:NAME``.

``aestimo people`` lists the people a project can score, ``people show ID``
shows one and ``people rm ID`` removes one made by ``aestimo personalize``
(:mod:`aestimo.own_people`).

The scores table (and the people listed) is the only thing written to stdout:
log lines, warnings and error messages go to stderr, so ``aestimo score ... >
scores.csv`` is a clean CSV. Quiet by default: the project's own log lines at
INFO, Kedro's only from WARNING (``-v`` or ``AESTIMO_VERBOSE=1`` brings back
its per-dataset and runner lines); progress bars only on a terminal. The exit
codes are listed in :data:`EXIT_CODES`, :data:`PERSONALIZE_EXIT_CODES` and
:data:`PEOPLE_EXIT_CODES` (and in each command's ``--help``).

Where its log lines go is :mod:`aestimo.logs`; it imports nothing heavy at the top either.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from aestimo.own_people import Person
    from aestimo.personalization.new_person import NewPerson
    from aestimo.scoring import PersonalScorer

# the log streams (conf/logging.yml of projects made before aestimo.logs name STDERR_CONSOLE here)
from aestimo.logs import (  # noqa: E402,F401
    LOGGING, STDERR_CONSOLE, VERBOSE_ENV, hide_progress_bars_off_a_terminal, quiet_logging, stderr_is_terminal, verbose_from_env,
)

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
PERSONALIZE_EXIT_CODES = f"""\
exit codes:
  {OK}  the person was personalized on every rating and saved
  {SOME_FAILED}  saved, but some rated images could not be read (missing, not an
     image): each is named on stderr (file, row); the others were used
  {USAGE}  nothing saved: bad arguments, a bad ratings file (named by file, row
     and column), too few usable ratings or all of one score, a name that
     exists (without --overwrite), not an Aestimo project or environment, or
     no trained experts in it
  {CRASH}  unexpected error: one line on stderr (the traceback with --debug,
     or with AESTIMO_DEBUG=1)
"""

DECLINED = 1
PEOPLE_EXIT_CODES = f"""\
exit codes:
  {OK}  listed, shown or removed
  {DECLINED}  rm answered no at its question: nothing removed
  {USAGE}  bad arguments, an unknown person (the closest ids are named), a
     person rm does not remove (the run's: a run writes them again), rm
     without --yes when there is no terminal to ask on, not an Aestimo
     project or environment
  {CRASH}  unexpected error: one line on stderr (the traceback with --debug,
     or with AESTIMO_DEBUG=1)
"""

_API_HINT = "pass project= the project folder, or theta0=, task_vectors= and coefficients= paths"
_CLI_HINT = "pass --project the project folder, or --theta0, --task-vectors and --coefficients"
_PERSONALIZE_HINT = "run it in the project folder, or pass --project the project folder"

#: The catalog entries that hold personalized people: the pipeline's people and `aestimo personalize`'s,
#: then the people of the ``new_people_ratings`` files (``personalize_new_people``).
PEOPLE_DATASETS = ("user_coefficients", "new_people_coefficients")


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


def _run_hint(env: str | None, to_outputs: str | None = None) -> str:
    return "kedro run --pipeline personalize" + (f" --to-outputs {to_outputs}" if to_outputs else "") + (f" --env {env}" if env else "")


def open_project(project_path: str | Path = ".", env: str | None = None):
    """``(project root, catalog, parameters)`` of an Aestimo project; ``ValueError`` (:class:`NotAProjectError`
    for a folder that is no Aestimo project) when it or its environment cannot be opened."""
    project_path = project_root(project_path)  # before Kedro is imported: a clear message, no Kedro output

    from kedro.config import MissingConfigException
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from aestimo.hooks import InvalidSettings

    bootstrap_project(project_path)
    try:
        with KedroSession.create(project_path=project_path, env=env) as session:
            context = session.load_context()
            catalog, params = context.catalog, context.params  # the configuration is read here
    except MissingConfigException as err:
        if env is None:
            raise ValueError(f"the configuration of '{project_path}' is incomplete: {err}") from err
        conf = project_path / "conf"
        envs = sorted(p.name for p in conf.iterdir() if p.is_dir()) if conf.is_dir() else []
        raise ValueError(f"no Kedro environment '{env}' in {conf} (environments: {', '.join(envs)})") from err
    except InvalidSettings as err:  # the project's parameter check (a SystemExit): a plain error here
        raise ValueError(str(err).removeprefix("error: ")) from None
    return project_path, catalog, params


def _load(catalog, name: str, project_path: Path, env: str | None, what: str, run: str):
    from kedro.io import DatasetError

    try:
        return catalog.load(name)
    except DatasetError as err:
        raise FileNotFoundError(
            f"{err} ({what} of '{project_path}', environment {env or 'local'}, are missing or unreadable: "
            f"run `{run}` there first)"
        ) from err


def project_people(catalog) -> dict[str, tuple[str, object]]:
    """Every personalized person of a project's catalog: ``{<source>__<rater_id>: (dataset, loader)}``,
    from :data:`PEOPLE_DATASETS` (an empty, absent or unconfigured one holds nobody). A person in
    both is listed with ``dataset`` naming both (``"user_coefficients+new_people_coefficients"``)."""
    from kedro.io import DatasetError

    people: dict[str, tuple[str, object]] = {}
    for name in PEOPLE_DATASETS:
        try:
            partitions = catalog.load(name)
        except DatasetError:  # "No partitions found", or not in this project's catalog
            continue
        for key, loader in partitions.items():
            if key in people:
                people[key] = (f"{people[key][0]}+{name}", people[key][1])
            else:
                people[key] = (name, loader)
    return people


def people_files(catalog) -> dict[str, tuple[str, Path]]:
    """Every personalized person's file: ``{<source>__<rater_id>: (dataset, path)}`` (the first of
    :data:`PEOPLE_DATASETS` that holds them)."""
    files = {}
    for key, (where, _) in project_people(catalog).items():
        name = where.split("+")[0]
        dataset = catalog.get(name)
        files[key] = (name, Path(dataset._path) / f"{key}{getattr(dataset, '_filename_suffix', '') or ''}")
    return files


def project_scorer(
    user: str, project_path: str | Path = ".", env: str | None = None, method: str | None = None, k: int | None = None, repeat: int = 0,
    device: str = "cpu",
) -> PersonalScorer:
    """The scorer of ``user`` (``source:rater_id`` or a bare id) among a project's personalized people
    (the pipeline's, `aestimo personalize`'s and the ``new_people_ratings`` files').

    Raises :class:`NotAProjectError` (a ``ValueError``) when ``project_path`` is not an Aestimo
    project or ``env`` not one of its environments, :class:`~aestimo.personalization.running.keys.UnknownPersonError`
    for an unknown person and ``FileNotFoundError`` when the project's run has not written the models yet.
    """
    project_path, catalog, _ = open_project(project_path, env)

    from aestimo.own_people import find
    from aestimo.personalization.running.keys import split_person_key
    from aestimo.scoring import PersonalScorer

    people = project_people(catalog)
    if not people:
        raise FileNotFoundError(
            f"no personalized people in '{project_path}', environment {env or 'local'}: run `{_run_hint(env)}` there first "
            "(or personalize yourself: aestimo personalize RATINGS.csv --name NAME)"
        )
    key = find(user, people)
    where, loader = people[key]
    source = split_person_key(key)[0]
    if "+" in where:
        raise ValueError(
            f"'{key.replace('__', ':', 1)}' has coefficients in both {' and '.join(where.split('+'))}: the name of a "
            "new_people_ratings file is taken by `aestimo personalize`; rename or remove one of them"
        )
    coefficients = _load_partition(loader, key, where)
    theta0 = _load(catalog, "theta0", project_path, env, "the models", _run_hint(env))
    task_vectors = _load(catalog, "task_vectors", project_path, env, "the models", _run_hint(env))
    return PersonalScorer.from_bundles(theta0, task_vectors, coefficients, method, k, repeat, source, device)


def _load_partition(loader, key: str, where: str):
    from kedro.io import DatasetError

    try:
        return loader()
    except DatasetError as err:
        raise FileNotFoundError(f"the coefficients of '{key.replace('__', ':', 1)}' in {where} are unreadable: {err}") from err


def project_personalize(
    ratings: str | Path,
    name: str,
    project_path: str | Path = ".",
    env: str | None = None,
    scale: tuple[float, float] | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> tuple[NewPerson, str]:
    """Personalize ``name`` from a ratings file with the project's deployed method and save them in
    its ``user_coefficients`` as ``own__<name>`` (:mod:`aestimo.personalization.new_person`).
    Returns the person and the folder their file went to.

    Raises ``ValueError`` (:class:`~aestimo.data.own_ratings.RatingsError` for the
    ratings, :class:`NotAProjectError` for the project) when nothing can be saved, and
    ``FileNotFoundError`` when the project has no trained experts yet. Nothing is written then.
    """
    from aestimo import config
    from aestimo.data.scales import USER_SOURCE
    from aestimo.personalization.running.keys import person_key
    from aestimo.data.own_ratings import check_name, read_ratings
    from aestimo.personalization.new_person import personalize_new_person

    check_name(name)
    project_path = project_root(project_path)
    rated = read_ratings(ratings, scale)  # a bad file is named before Kedro starts
    project_path, catalog, project_params = open_project(project_path, env)
    key = person_key(USER_SOURCE, name)
    known = project_people(catalog)
    if key in known:
        where = known[key][0]
        if where != "user_coefficients":
            raise ValueError(
                f"'{USER_SOURCE}:{name}' is a new person of the new_people_ratings files ({name}.csv, personalized by "
                "`kedro run`): choose another --name, or remove that file"
            )
        if not overwrite:
            raise ValueError(f"a person '{USER_SOURCE}:{name}' exists already: pass --overwrite to replace them, or choose another --name")
    dataset = catalog.get("user_coefficients")
    if getattr(dataset, "_overwrite", False):  # saving one partition would delete every other person
        raise ValueError("the catalog's user_coefficients has 'overwrite: true': saving one person would remove the others")
    params = config.parse("personalize", project_params.get("personalize", {}))
    if device is not None:
        from aestimo import device as devices

        devices.resolve(device)  # an unknown or absent device is named before anything runs
        params = params.model_copy(update={"device": device})
    what, run = "the trained experts (θ0 and the task vectors)", _run_hint(env, "task_vectors")
    theta0 = _load(catalog, "theta0", project_path, env, what, run)
    task_vectors = _load(catalog, "task_vectors", project_path, env, what, run)
    person = personalize_new_person(rated, name, theta0, task_vectors, params, _chosen_settings(catalog))
    catalog.save("user_coefficients", {person.key: person.bundle})  # one partition, written atomically
    folder = getattr(dataset, "_path", None)
    return person, str(folder) if folder else "user_coefficients"


def _chosen_settings(catalog) -> dict | None:
    """The settings the run chose on validation people (``chosen_settings``), as the pipeline deploys
    them; None (the configured values) where the run has not chosen them yet."""
    import logging

    from kedro.io import DatasetError

    from aestimo.personalization.running.selection import chosen_settings

    try:
        return chosen_settings(catalog.load("chosen_settings"))
    except DatasetError:
        logging.getLogger(__name__).warning(
            "no chosen_settings in this project yet (`kedro run --pipeline personalize` chooses them on validation "
            "people): personalizing with the configured values"
        )
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aestimo", description="Personalized image aesthetic scores.",
        epilog="aestimo score:\n" + EXIT_CODES + "\naestimo personalize:\n" + PERSONALIZE_EXIT_CODES
        + "\naestimo people:\n" + PEOPLE_EXIT_CODES,
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
    sc.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else the CPU), cpu, cuda, cuda:N or mps (default: auto)")
    sc.add_argument("--output", "-o", default=None, help="write the table as CSV here instead of printing it")
    _common(sc)

    pe = sub.add_parser(
        "personalize", help="personalize a new person from their own ratings file",
        description="""\
Personalize a new person from their own ratings with the project's deployed
method (personalize.deploy_method) and save them in its user_coefficients as
own:NAME, for `aestimo score --user NAME`. Messages go to stderr.

RATINGS is a CSV, one row per image, two columns: the image path (relative
paths resolve against the CSV's folder) and the score. A header row is
optional (a first row whose score is not a number and whose path is no image
file name); blank lines and lines starting with # are skipped; a line
'# scale: LO-HI' states the scale. At least 10 rows with readable images,
not all of one score.""",
        epilog=PERSONALIZE_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pe.add_argument("ratings", help="the ratings CSV: image path, score")
    pe.add_argument("--name", required=True, help="the person's name (letters, digits, . _ -): scored as --user NAME or own:NAME")
    pe.add_argument("--scale", default=None, metavar="LO-HI",
                    help="the rating scale, e.g. 1-5 or 0-100 (default: the file's '# scale:' line, else the smallest "
                    "of 1-5, 1-10, 0-10, 0-100 that holds every score); scores outside it are an error")
    pe.add_argument("--project", default=".", help="the Aestimo project folder (default: .)")
    pe.add_argument("--env", default=None, help="Kedro environment whose catalog holds the models")
    pe.add_argument("--overwrite", action="store_true", help="replace a person of this name made by an earlier aestimo personalize")
    pe.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: the project's personalize.device)")
    _common(pe)

    pp = sub.add_parser(
        "people", help="list, show or remove the people a project can score",
        description="""\
List the people a project can score (your own, made with `aestimo personalize`
or the project's new_people_ratings files, then the run's held-out people):
their id, kind, when and how they were personalized, the ks fitted and the
method `aestimo score` uses. `people show ID` shows one in full; `people rm ID`
removes one of your own made with `aestimo personalize` (it asks first, unless
--yes). IDs are source:rater_id (own:NAME for your own); a bare id works when
one source has it. The list goes to stdout, messages to stderr.""",
        epilog=PEOPLE_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pp.set_defaults(usage=pp)
    pp.add_argument("action", nargs="?", choices=("list", "show", "rm"), default="list", help="list (default), show ID or rm ID")
    pp.add_argument("id", nargs="?", help="the person, for show and rm: source:rater_id, or the bare rater id")
    pp.add_argument("--own", action="store_true", help="list your own people only")
    pp.add_argument("--yes", "-y", action="store_true", help="rm without asking")
    pp.add_argument("--project", default=".", help="the Aestimo project folder (default: .)")
    pp.add_argument("--env", default=None, help="Kedro environment whose catalog holds the people")
    _common(pp)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true",
                        help=f"show Kedro's own log lines too (a line per dataset loaded, ...; or set {VERBOSE_ENV}=1)")
    parser.add_argument("--debug", action="store_true", help="on an unexpected error, print the full traceback")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (:data:`EXIT_CODES`). Bad arguments exit 2 through argparse."""
    parser = _parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("AESTIMO_DEBUG", "").lower() not in ("", "0", "false", "no")
    table_out = sys.stdout
    try:
        # Whatever writes to stdout while the scorer is built and the images scored (Kedro's
        # logging configured from any logging.yml, warnings, a library's print) lands on stderr.
        with contextlib.redirect_stdout(sys.stderr), _quiet(args.verbose):
            if args.command == "personalize":
                return _personalize(parser, args)
            if args.command == "people":
                return _people(args, table_out)
            return _score(parser, args, table_out)
    except Exception as err:  # noqa: BLE001  (anything unexpected: one line, exit 3)
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        message = " ".join(f"{type(err).__name__}: {err}".split())
        hint = "" if debug else " (rerun with --debug or AESTIMO_DEBUG=1 for the traceback)"
        print(f"error: {message}{hint}", file=sys.stderr)
        return CRASH


@contextlib.contextmanager
def _quiet(verbose: bool):
    """For one command: the command line's :data:`LOGGING`, from any folder and whatever logging.yml
    the project has, with Kedro's own INFO lines when ``verbose`` (or ``AESTIMO_VERBOSE``; the
    project's :class:`aestimo.hooks.LoggingHooks` keeps to it); progress bars only on a terminal;
    the environment as it was afterwards."""
    saved = {name: os.environ.get(name) for name in (VERBOSE_ENV, "TQDM_DISABLE")}
    try:
        if verbose:
            os.environ[VERBOSE_ENV] = "1"
        hide_progress_bars_off_a_terminal()  # before anything imports tqdm
        quiet_logging(verbose_from_env())
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _score(parser: argparse.ArgumentParser, args: argparse.Namespace, table_out) -> int:
    from aestimo.bundle import BundleError
    from aestimo.personalization.running.keys import UnknownPersonError
    from aestimo.scoring import PersonalScorer, score_images

    if args.coefficients and not (args.theta0 and args.task_vectors):
        parser.error("--coefficients needs --theta0 and --task-vectors")
    if args.user and (args.theta0 or args.task_vectors):
        parser.error("--theta0 and --task-vectors go with --coefficients; --user finds the files in the project")
    if args.output and not Path(args.output).expanduser().resolve().parent.is_dir():
        parser.error(f"--output {args.output}: its folder does not exist")
    try:
        if args.coefficients:
            scorer = PersonalScorer.from_files(args.theta0, args.task_vectors, args.coefficients, args.method, args.k, args.repeat, args.device)
        else:
            try:
                scorer = project_scorer(args.user, args.project, args.env, args.method, args.k, args.repeat, args.device)
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


def _personalize(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from aestimo.bundle import BundleError
    from aestimo.data.scales import USER_SOURCE
    from aestimo.data.own_ratings import check_name, format_scale, parse_scale

    try:
        check_name(args.name)
    except ValueError as err:
        parser.error(f"--name: {err}")
    scale = None
    if args.scale is not None:
        try:
            scale = parse_scale(args.scale)
        except ValueError as err:
            parser.error(f"--scale: {err}")
    try:
        try:
            person, where = project_personalize(args.ratings, args.name, args.project, args.env, scale, args.overwrite, args.device)
        except NotAProjectError as err:
            raise NotAProjectError(err.path, err.reason, _PERSONALIZE_HINT) from None
    except (NotAProjectError, BundleError, FileNotFoundError, ValueError) as err:
        lines = str(err).splitlines()
        print("error: " + " ".join(lines[0].split()), file=sys.stderr)
        for line in lines[1:]:  # the unreadable images behind too few ratings, one per line
            print(f"  {line.strip()}", file=sys.stderr)
        return USAGE
    for problem in person.problems:
        print(f"left out: {problem}", file=sys.stderr)
    meta = person.bundle.meta
    origin = {"given": "from --scale"}.get(person.scale_origin, person.scale_origin)
    hint = "; pass --scale LO-HI if yours is another" if origin.startswith("inferred") else ""
    chosen = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in person.chosen.items())
    chosen = f" ({chosen[2:]} chosen on validation people)" if chosen else ""
    print(
        f"personalized '{USER_SOURCE}:{args.name}' with '{person.method}'{chosen} on {person.used} of {person.used + len(person.problems)} "
        f"ratings (scale {format_scale(meta['scale'])}, {origin}{hint}); saved in {where}",
        file=sys.stderr,
    )
    print(f"score with: aestimo score --user {USER_SOURCE}:{args.name} PHOTOS...", file=sys.stderr)
    return SOME_FAILED if person.problems else OK


def _people(args: argparse.Namespace, table_out) -> int:
    from aestimo import own_people
    from aestimo.personalization.running.keys import UnknownPersonError

    parser = args.usage  # `aestimo people`'s own usage line
    if args.action == "list" and args.id:
        parser.error(f"people takes list, show ID or rm ID (got '{args.id}'): to see one person, aestimo people show {args.id}")
    if args.action != "list" and not args.id:
        parser.error(f"people {args.action} needs the person's id: aestimo people {args.action} SOURCE:ID (aestimo people lists them)")
    if args.yes and args.action != "rm":
        parser.error("--yes goes with people rm")
    try:
        try:
            project_path, catalog, _ = open_project(args.project, args.env)
        except NotAProjectError as err:
            raise NotAProjectError(err.path, err.reason, _PERSONALIZE_HINT) from None
        files = people_files(catalog)
        if args.action == "list":
            people = [p for p in own_people.list_people(files) if p.kind == own_people.OWN or not args.own]
            if not people:
                where = f"'{project_path}', environment {args.env or 'local'}"
                print(f"no {'own ' if args.own else ''}personalized people in {where}: personalize yourself with "
                      f"aestimo personalize RATINGS.csv --name NAME, or run `{_run_hint(args.env)}`", file=sys.stderr)
                return OK
            table_out.write(own_people.table(people))
            table_out.flush()
            return OK
        key = own_people.find(args.id, files)
        person = own_people.read_person(key, *files[key])
    except (UnknownPersonError, NotAProjectError, ValueError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return USAGE
    if args.action == "show":
        table_out.write(own_people.describe(person, person.path.parent))
        table_out.flush()
        return OK
    return _remove(person, args.yes)


def _remove(person: Person, yes: bool) -> int:
    """``aestimo people rm``: one's own person made by `aestimo personalize`, after asking (or ``--yes``)."""
    from aestimo.own_people import OWN

    if not person.removable:
        why = ("a held-out person of the run: `kedro run` writes them again"
               if person.kind != OWN else "personalized from a new_people_ratings file: remove that file, then rerun `kedro run`")
        print(f"error: not removing '{person.id}': {why}; people rm removes the people made with aestimo personalize", file=sys.stderr)
        return USAGE
    what = f"'{person.id}' (personalized {person.modified:%Y-%m-%d %H:%M} with '{person.method}')"
    if not yes:
        if not (sys.stdin.isatty() and stderr_is_terminal()):
            print(f"error: not removing {what} without --yes: there is no terminal to ask on", file=sys.stderr)
            return USAGE
        print(f"remove {what}? [y/N] ", end="", file=sys.stderr, flush=True)
        try:
            answer = input()
        except EOFError:  # stdin closed: no answer is no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed", file=sys.stderr)
            return DECLINED
    person.path.unlink()
    print(f"removed {what}", file=sys.stderr)
    return OK


if __name__ == "__main__":
    sys.exit(main())
