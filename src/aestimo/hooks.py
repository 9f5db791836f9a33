"""Project hooks: validate every parameter block, and the raw data's folders, before any node runs.

A bad parameter or a missing data folder stops the run at once with a one-line message that
names the setting to fix (no traceback): the hook raises :class:`InvalidSettings`, a SystemExit.
"""

from __future__ import annotations

from pathlib import Path

from kedro.framework.hooks import hook_impl


class InvalidSettings(SystemExit):
    """The run's parameters cannot work; the message says which setting and what to do."""


def missing_roots(ingest, project_path: Path, env: str | None) -> list[str]:
    """A message per enabled source whose data lives in a folder of the user's (not the synthetic
    world) when that folder is not set or does not exist."""
    where = f"conf/{env or 'base'}/parameters_ingest.yml"
    out = []
    for kind, src in ingest.active_sources.items():
        if src.synthetic:
            continue
        root = Path(src.root) if src.root else None
        if root is None:
            out.append(f"parameter 'ingest.sources.{kind}.root' is empty: set it to the folder of the downloaded data set in {where}")
        elif not (root if root.is_absolute() else project_path / root).is_dir():
            out.append(f"parameter 'ingest.sources.{kind}.root': folder '{src.root}' does not exist; point it at the downloaded data set in {where}")
    return out


class ParameterValidationHooks:
    @hook_impl
    def after_context_created(self, context) -> None:
        from aestimo import config

        params = context.params
        problems = []
        for section in config.SECTIONS:
            if section in params:
                try:
                    parsed = config.parse(section, params[section])
                except ValueError as err:
                    problems.extend(str(err).splitlines()[1:] or [str(err)])
                    continue
                if section == "ingest":
                    problems.extend(missing_roots(parsed, Path(context.project_path), context.env))
        if problems:
            raise InvalidSettings("error: invalid settings:\n  " + "\n  ".join(p.strip() for p in problems))
