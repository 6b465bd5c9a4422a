"""What every ``redlab`` command shares: the typer app, logging and signal set-up, and
one clear line per error (exit 2 for bad input, 1 for a lab error, 130 interrupted).
The commands are in harness/cli.py (labs) and harness/cli_results.py (stored results)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from harness.errors import ConfigError, RedLabError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="RedLab: prove network redundancy on real kernels.")

def _fail(exc: RedLabError) -> NoReturn:
    typer.secho(f"error: {exc.problem}", err=True, fg="red")
    if exc.fix:
        typer.secho(f"  fix: {exc.fix}", err=True)
    raise typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def _setup(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # -v is RedLab's own detail (where a trial's time went, each lab step), not that of
    # every library it uses (matplotlib's font search alone is hundreds of lines)
    for ours in ("harness", "redlab"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)

    # SIGTERM unwinds like Ctrl-C, so every finally: and journal rollback runs. Only in
    # this process: pyroute2 forks helpers (to open sockets in other namespaces) and stops
    # them with SIGTERM; an exception there would run a second copy of the harness.
    owner = os.getpid()

    def _terminate(signum: int, _frame: Any) -> None:
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)


@contextmanager
def _reported() -> Iterator[None]:
    """One clear line for the user's errors; Ctrl-C ends quietly once cleanup has run."""
    try:
        yield
    except RedLabError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.secho("interrupted: the lab was torn down; finished trials are kept", err=True)
        raise typer.Exit(130) from None


def _say(lines: list[tuple[str, str]]) -> None:
    for text, verdict in lines:
        typer.secho(text, fg={"pass": "green", "fail": "red"}.get(verdict))
