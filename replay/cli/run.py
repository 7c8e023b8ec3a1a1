"""``replay run``: replay a capture against a baseline and a migrated candidate.

Only parses options, calls :func:`replay.run.run_replay`, shows a progress bar on
stderr and prints a one-screen summary; exit 0, 1 (findings at or above --fail-on)
or 2 (bad input or setup, through the group's error handling).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from replay.cli.options import fail_on_option, slower_factor_option
from replay.engine import DEPTH
from replay.model.selection import parse_time
from replay.report.words import blame_text, finding_text, headline, one_line
from replay.run import MIGRATION_TIMEOUT, RunOptions, RunResult, run_replay

SUMMARY_CLASSES = 10


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return None if value is None else parse_time(value)


class _Bar:
    """Replay progress on stderr: a click progress bar on a terminal, and elsewhere (a CI
    log, a cron mail) a line every ``every`` seconds, so a long run is never silent."""

    def __init__(
        self,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        terminal: bool | None = None,
    ) -> None:
        self.bar: Any = None
        self.shown = 0
        self.every = every
        self.clock = clock
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.started: float | None = None
        self.last_line = 0.0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        if self.terminal:
            if self.bar is None:
                self.bar = click.progressbar(
                    length=max(total, 1), label="replaying", file=sys.stderr
                )
                self.bar.__enter__()
            self.bar.update(done - self.shown)
        else:
            now = self.clock()
            if self.started is None:
                self.started = self.last_line = now
            elif now - self.last_line >= self.every:
                self._line(done, now)
        self.shown = done

    def _line(self, done: int, now: float) -> None:
        self.last_line = now
        elapsed = now - (self.started or now)
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        rate = f", {done / elapsed:,.0f}/s" if elapsed > 0 else ""
        click.echo(f"replaying: {done:,} of {self.total:,} statements{share}{rate}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        elif self.started is not None and self.shown:
            self._line(self.shown, self.clock())


def print_summary(result: RunResult) -> None:
    """The one-screen summary of a run: counts, migrations, verdict, top findings."""
    counts = result.counts
    click.echo(
        f"Replayed {counts.statements} statements of {counts.sessions} sessions in "
        f"{counts.elapsed:.1f}s ({counts.statements_per_second:.0f}/s) against "
        f"{', '.join(result.targets)}."
    )
    for migration in result.migrations:
        click.echo(f"  migration {migration.name}: {len(migration.statements)} statements")
    click.echo(headline(result.findings))
    findings = [c for c in result.findings.classes if c.is_finding]
    for query_class in findings[:SUMMARY_CLASSES]:
        click.echo(
            f"  {query_class.verdict!s:<10} {query_class.count:>6}x  "
            f"{one_line(query_class.sql, 60):<60}  {one_line(finding_text(query_class), 60)}"
        )
        if query_class.blame:
            click.echo(f"{'':>20}caused by {one_line(blame_text(query_class.blame), 100)}")
    if len(findings) > SUMMARY_CLASSES:
        click.echo(f"  ... and {len(findings) - SUMMARY_CLASSES} more")
    click.echo(f"Report: {result.reports.get('html', result.report_folder)}")


@click.command("run")
@click.option("--capture", required=True, type=click.Path(path_type=Path), help="Capture folder.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Report folder.")
@click.option("--source", help="Database to clone (only read: pg_dump).")
@click.option("--scratch", help="Server for the clones (default: a throwaway embedded one).")
@click.option("--baseline", help="Your own baseline database (nothing is cloned).")
@click.option("--candidate", help="Your own migrated candidate database.")
@click.option("--baseline2", help="Your own second baseline, to measure noise.")
@click.option(
    "--migrations",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of *.sql migrations, applied to the candidate in name order.",
)
@click.option("--migrate-cmd", help="Command that migrates $DATABASE_URL (alembic, dbmate ...).")
@click.option("--schema-only", is_flag=True, help="Clone without data (fast; errors only).")
@click.option("--keep", is_flag=True, help="Keep the cloned databases (and embedded server).")
@click.option("--jobs", default=4, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--speed",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Captured pace times FACTOR (2 = twice as fast); 0 = as fast as possible.",
)
@click.option(
    "--pipeline-depth",
    default=DEPTH,
    show_default=True,
    type=click.IntRange(min=1),
    help="Statements a session may have in flight on one connection, sent without "
    "waiting for the previous answer (1: wait for each; every statement timed).",
)
@click.option("--statement-timeout", default=30.0, show_default=True, type=float, help="Seconds.")
@click.option("--lock-timeout", default=5.0, show_default=True, type=float, help="Seconds.")
@click.option(
    "--applied-versions",
    metavar="TABLE[:COLUMN]",
    help="Apply only the --migrations the source has not recorded in TABLE's COLUMN "
    "(default: version), as dbmate, golang-migrate or Rails record them; a file's version "
    "is its leading number.",
)
@click.option(
    "--migration-timeout",
    default=MIGRATION_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds each migration statement (or --migrate-cmd as a whole) may run; 0 = no limit.",
)
@click.option(
    "--since",
    callback=_time,
    help="Replay from this time (epoch or ISO 8601, UTC unless a zone is given).",
)
@click.option(
    "--until",
    callback=_time,
    help="Replay up to this time (epoch or ISO 8601, UTC unless a zone is given).",
)
@click.option(
    "--replay-role",
    metavar="NAME",
    help="Replay every session as this role (default: each as its captured role).",
)
@click.option(
    "--as-connected-user",
    is_flag=True,
    help="Replay every session as the target URL's user, not as its captured role.",
)
@click.option("--class", "classes", multiple=True, help="Replay only this query class.")
@click.option(
    "--app", "applications", multiple=True, help="Replay only this application_name's sessions."
)
@fail_on_option
@click.option("--no-noise", is_flag=True, help="No second baseline (noise not measured).")
@slower_factor_option
def run(no_noise: bool, **params: Any) -> None:
    """Replay a capture against a baseline and a migrated candidate; report what breaks.

    Either clone --source (pg_dump, restored on --scratch or an embedded server) and
    apply --migrations or --migrate-cmd to the candidate, or name your own --baseline
    and --candidate. Exit 1 when a finding is at or above --fail-on, 2 on bad input.
    """
    options = RunOptions(noise=not no_noise, **params)
    bar = _Bar()
    try:
        result = run_replay(
            options, notify=lambda message: click.echo(message, err=True), progress=bar
        )
    finally:
        bar.close()
    print_summary(result)
    click.get_current_context().exit(result.exit_code)
