"""``replay inspect``: summarize a capture, or a window of it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from replay.capture.summary import inspect_capture
from replay.model.selection import Selection, iso, parse_time
from replay.sql.fingerprint import normalize


@click.command("inspect")
@click.argument("capture", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
@click.option(
    "--since",
    help="Only statements at or after this time (ISO 8601, UTC unless a zone is given; or epoch).",
)
@click.option(
    "--until",
    help="Only statements at or before this time (ISO 8601, UTC unless a zone is given; or epoch).",
)
@click.option("--app", "apps", multiple=True, help="Only this application_name (repeatable).")
@click.option(
    "--class",
    "classes",
    multiple=True,
    metavar="FINGERPRINT",
    help="Only this query class (repeatable).",
)
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many of the busiest query classes to list.",
)
def inspect(
    capture: Path,
    as_json: bool,
    since: str | None,
    until: str | None,
    apps: tuple[str, ...],
    classes: tuple[str, ...],
    top: int,
) -> None:
    """Summarize CAPTURE: sessions, statements, errors, time span, busiest query classes."""
    keep = Selection(parse_time(since), parse_time(until), frozenset(classes), frozenset(apps))
    summary = inspect_capture(capture, keep, warn=lambda m: click.echo(f"warning: {m}", err=True))
    if as_json:
        click.echo(json.dumps(summary.to_json(top), indent=2))
        return
    click.echo(f"capture      {capture}")
    click.echo(f"sessions     {summary.sessions}  ({summary.not_recorded} not recorded)")
    click.echo(
        f"statements   {summary.statements}  ({summary.errors} errors, "
        f"{summary.not_replayable} not replayable)"
    )
    click.echo(f"classes      {len(summary.by_class)}")
    click.echo(f"time span    {iso(summary.first)} .. {iso(summary.last)}")
    if summary.applications:
        names = ", ".join(f"{a or '(none)'} ({n})" for a, n in summary.applications.most_common())
        click.echo(f"applications {names}")
    click.echo("")
    click.echo(f"{'count':>8} {'errors':>7} {'total ms':>10}  class             sql")
    for cls in summary.busiest(top):
        sql = " ".join(normalize(cls.sql).split())
        click.echo(
            f"{cls.count:>8} {cls.errors:>7} {cls.total_time * 1000:>10.1f}  "
            f"{cls.fingerprint:<16}  {sql[:80]}"
        )
