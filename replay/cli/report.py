"""``replay report``: re-render a run's reports from its saved outcomes, no database."""

from __future__ import annotations

from pathlib import Path

import click

from replay.cli.options import fail_on_option, slower_factor_option
from replay.compare import classify, exit_code
from replay.errors import BadInput
from replay.report import FORMATS, write_reports
from replay.report.words import headline
from replay.run import check_finished


def _formats(value: str) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in value.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise BadInput(f"unknown --format {value!r} (comma-separated of {', '.join(FORMATS)})")
    return chosen


@click.command("report")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    default=",".join(FORMATS),
    show_default=True,
    help="Comma-separated formats to write: html, md, json, junit.",
)
@fail_on_option
@click.option(
    "--max-examples",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Examples kept per query class.",
)
@slower_factor_option
def report(
    folder: Path, formats: str, fail_on: str, max_examples: int, slower_factor: float
) -> None:
    """Re-render the reports of FOLDER (reports/NAME) from its saved outcomes.

    Writes report.html, report.md, findings.json and junit.xml next to the outcomes and
    exits 1 when a finding is at or above --fail-on, else 0.
    """
    chosen = _formats(formats)
    check_finished(folder)  # partial outcomes of a stopped run must not read as safe
    findings = classify(folder, slower_factor=slower_factor, max_examples=max_examples)
    written = write_reports(folder, findings, fail_on=fail_on, formats=chosen)
    click.echo(headline(findings))
    for path in written.values():
        click.echo(f"  {path}")
    click.get_current_context().exit(exit_code(findings, fail_on))
