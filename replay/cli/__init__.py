"""The ``replay`` command line: thin click commands over the library.

Each command lives in its own module and only parses options, makes one library call
and prints. Library errors (:class:`replay.errors.ReplayError`) become a one-line
message on stderr and exit code 2, through :class:`ReplayGroup`.
"""

from __future__ import annotations

from typing import Any

import click

from replay import __version__
from replay.errors import ReplayError


class ReplayGroup(click.Group):
    """A click group that maps the library's errors to exit code 2 and one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReplayError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
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
