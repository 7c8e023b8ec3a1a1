"""``replay capture``: run the capture proxy in front of a PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("capture")
@click.option(
    "--upstream",
    required=True,
    metavar="HOST:PORT",
    help="The PostgreSQL server the application really talks to.",
)
@click.option(
    "--listen",
    default="127.0.0.1:6432",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the application connects instead.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Capture folder (created owner-only; new segments are added if it exists).",
)
@click.option(
    "--sample",
    default=1.0,
    show_default=True,
    type=float,
    help="Fraction of connections to record; the rest are only forwarded.",
)
@click.option("--no-digest", is_flag=True, help="Do not hash returned rows (less CPU).")
@click.option(
    "--copy-cap",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(min=0),
    help="Bytes of COPY FROM STDIN data kept per statement; past it, not replayable.",
)
@click.option(
    "--segment-mb",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Start a new segment file past this size.",
)
def capture(
    upstream: str,
    listen: str,
    out: Path,
    sample: float,
    no_digest: bool,
    copy_cap: int,
    segment_mb: int,
) -> None:
    """Record what applications send to PostgreSQL, through a proxy, until Ctrl-C.

    Point the application at --listen instead of the database. Every byte is forwarded
    unchanged; statements, parameters, outcomes and timings go to --out.
    """
    from replay.capture.proxy import CaptureSettings, run_capture  # mitmproxy loads slowly

    settings = CaptureSettings(
        upstream=upstream,
        listen=listen,
        out=out,
        sample=sample,
        digest_rows=not no_digest,
        copy_cap=copy_cap,
        segment_mb=segment_mb,
    )

    def ready() -> None:
        click.echo(f"capturing {listen} -> {upstream} into {out} (Ctrl-C to stop)", err=True)

    stats = run_capture(settings, on_ready=ready)
    click.echo(
        f"captured {stats.statements} statements from {stats.sessions} sessions "
        f"({stats.connections} connections, {stats.not_recorded} not recorded) "
        f"into {out}",
        err=True,
    )
