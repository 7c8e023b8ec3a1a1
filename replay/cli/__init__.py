"""The ``replay`` command line: thin click commands over the library.

Each command lives in its own module and only parses options, makes one library call
and prints. Library errors (:class:`replay.errors.ReplayError`) become a one-line
message on stderr and exit code 2, through :class:`ReplayGroup`.

SIGTERM and SIGHUP (what CI cancellations, ``timeout``, systemd, Kubernetes and a closed
terminal send) stop a command the way Ctrl-C does: they raise :class:`Interrupted`, a
:class:`KeyboardInterrupt`, in the main thread, so every context manager on the way out
runs (clones dropped, servers stopped, workers joined); the exit code is 128 + the
signal's number, as a shell reports a process the signal killed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import click

from replay import __version__
from replay.errors import ReplayError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by ``signum`` (SIGTERM, SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _ignore(signum: int, frame: FrameType | None) -> None:
    """After the first stop signal: the cleanup it started must not be cut short. A
    Python handler rather than SIG_IGN, which the programs started while cleaning up
    (pg_ctl stop) would inherit."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    for stop in STOP_SIGNALS:
        signal.signal(stop, _ignore)
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread
    (once: later ones are ignored while the command cleans up)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {stop: signal.signal(stop, _interrupt) for stop in STOP_SIGNALS}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


class ReplayGroup(click.Group):
    """A click group that maps the library's errors to exit code 2 and one line, and
    stop signals to 128 + their number."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with stop_signals_interrupt():
                return super().invoke(ctx)
        except ReplayError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except Interrupted as exc:
            click.echo(f"Interrupted by {exc.name}.", err=True)
            ctx.exit(128 + exc.signum)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=ReplayGroup)
@click.version_option(__version__, prog_name="replay")
def cli() -> None:
    """Prove a PostgreSQL migration is safe for the code already running in production.

    Capture what the application sends, replay it against a baseline and a migrated
    candidate, and report every query class the migration breaks.
    """


def _register() -> None:
    from replay.cli import commands

    for command in commands.ALL:
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="replay")


if __name__ == "__main__":  # pragma: no cover
    main()
