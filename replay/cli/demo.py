"""``replay demo``: the whole idea in one command, on a throwaway PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--out",
    default=Path("reports/demo"),
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Report folder.",
)
@click.option(
    "--captures",
    default=Path("captures"),
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the demo's capture goes (as captures/demo).",
)
@click.option(
    "--migrations",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Your own migrations for the demo app, instead of the bundled ones.",
)
def demo(out: Path, captures: Path, migrations: Path | None) -> None:
    """Capture a URL shortener's traffic, replay it against new migrations, report.

    Starts a throwaway PostgreSQL as 'production', puts the capture proxy in front of
    it, runs the old application's workload through it, then replays the capture
    against a clone with four new migrations applied (one safe, three that break the
    old code in different ways) and writes the report. Needs no server or network.
    Exits as `replay run` would: 1, since the bundled migrations break the old code.
    """
    from replay.cli.run import print_summary
    from replay.demo.runner import demo_files, run_demo

    result = run_demo(
        out, captures, notify=lambda m: click.echo(m, err=True), migrations=migrations
    )
    print_summary(result)
    click.echo(f"The demo's app and migrations: {demo_files()}")
    # The exit code is the gate's, as the report says: three of the demo's migrations
    # break the old code on purpose, so a release gate stops them (exit 1).
    click.get_current_context().exit(result.exit_code)
