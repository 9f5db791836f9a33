"""Where the project's log lines and progress bars go: the project's own lines at INFO, Kedro's
from WARNING (``AESTIMO_VERBOSE=1`` or ``aestimo -v``: Kedro's INFO lines too), on stderr, never
stdout; rich's columns on a terminal, one unwrapped line per record elsewhere; progress bars only
on a terminal. ``conf/logging.yml`` (read by ``kedro run``) names the streams below, and the
command line and notebooks use :data:`LOGGING`, its copy, whatever folder they run in.

Imported by ``conf/logging.yml``: it imports nothing heavy at the top.
"""

from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console

#: Set (to anything but 0, false, no), Kedro's own INFO lines are shown: a line per dataset loaded
#: or saved, per node run, ... (``aestimo -v`` sets it for its command; ``AESTIMO_VERBOSE=1 kedro run``).
VERBOSE_ENV = "AESTIMO_VERBOSE"


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` (as it is now: pytest and Jupyter replace it) is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def verbose_from_env() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def quiet_logging(verbose: bool = False) -> None:
    """Log as the command line does (:data:`LOGGING`; Kedro's own INFO lines too with ``verbose``):
    for a notebook or script that opens the project, best called before it imports Kedro, since
    importing ``kedro.framework.project`` configures logging from the current folder's
    conf/logging.yml (or Kedro's coloured default) and says so; that line is held back here."""
    import logging

    logging.disable(logging.INFO)
    try:
        from kedro.framework.project import configure_logging
    finally:
        logging.disable(logging.NOTSET)
    level = "INFO" if verbose else LOGGING["loggers"]["kedro"]["level"]
    configure_logging({**LOGGING, "loggers": {**LOGGING["loggers"], "kedro": {"level": level}}})


def hide_progress_bars_off_a_terminal() -> None:
    """No tqdm bar (carriage returns, a line per update) when stderr goes to a file or pipe:
    tqdm reads ``TQDM_DISABLE`` when it is imported (and processes started later inherit it).
    A value set already is left alone."""
    if not stderr_is_terminal():
        os.environ.setdefault("TQDM_DISABLE", "1")


class _Stderr:
    """``sys.stderr`` as it is at each write, passing text on only while its being a terminal is
    ``on_terminal``: ``conf/logging.yml`` has a handler for each case (rich's columns on a terminal,
    one unwrapped line per record elsewhere), and each writes here."""

    def __init__(self, on_terminal: bool):
        self.on_terminal = on_terminal

    def write(self, text: str) -> int:
        if stderr_is_terminal() == self.on_terminal:
            sys.stderr.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(AttributeError, ValueError):
            sys.stderr.flush()

    def isatty(self) -> bool:
        return stderr_is_terminal()

    @property
    def encoding(self) -> str:
        return getattr(sys.stderr, "encoding", None) or "utf-8"


#: The rich console of ``conf/logging.yml``'s rich handler: writes to stderr while it is a terminal
#: (never stdout; never Jupyter's rich display, which would colour a notebook's cells).
TERMINAL_CONSOLE = Console(file=_Stderr(on_terminal=True), force_jupyter=False)
#: The stream of ``conf/logging.yml``'s plain handler: stderr while it is not a terminal.
PLAIN_STDERR = _Stderr(on_terminal=False)
#: A rich console on stderr, terminal or not (the logging.yml of projects made before TERMINAL_CONSOLE).
STDERR_CONSOLE = Console(stderr=True)

#: The command line's logging, whatever the project's conf/logging.yml says (its copy for `kedro
#: run`): the project's lines at INFO, Kedro's from WARNING, on stderr; rich's columns on a
#: terminal, one unwrapped line per record elsewhere.
LOGGING: dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s", "datefmt": "%Y-%m-%d %H:%M:%S"}},
    "handlers": {
        "rich": {"class": "kedro.logging.RichHandler", "rich_tracebacks": True, "console": "ext://aestimo.logs.TERMINAL_CONSOLE"},
        "plain": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://aestimo.logs.PLAIN_STDERR"},
    },
    "loggers": {"kedro": {"level": "WARNING"}, "aestimo": {"level": "INFO"}},
    "root": {"handlers": ["rich", "plain"]},
}
