"""The demo, end to end: production, capture, old traffic, migrations, replay, report.

Everything it starts (a throwaway PostgreSQL standing in for production, the capture
proxy) is stopped on the way out, on success, error or Ctrl-C alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import psycopg

from replay.capture.process import CaptureProcess
from replay.demo.app import workload
from replay.errors import SetupError
from replay.run import RunOptions, RunResult, run_replay
from replay.targets.server import EmbeddedServer

DATABASE = "shortener"
SNAPSHOT = "shortener_snapshot"
Notify = Callable[[str], None]


def demo_files() -> Path:
    """The folder holding the demo's ``app/`` and ``migrations/``."""
    return Path(str(resources.files("replay.demo")))


@contextlib.contextmanager
def production(notify: Notify) -> Iterator[EmbeddedServer]:
    """A throwaway PostgreSQL with the shortener's database, as production has it."""
    notify("starting a throwaway PostgreSQL as 'production'")
    server = EmbeddedServer().start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        schema = (demo_files() / "app" / "schema.sql").read_text()
        with psycopg.connect(server.url(DATABASE), autocommit=True) as conn:
            conn.execute(schema.encode())
        with psycopg.connect(server.url(), autocommit=True) as admin:
            # The state the capture starts from, as a nightly snapshot would be: replaying
            # the day's INSERTs on a copy made after them would only hit duplicate keys.
            admin.execute(f"CREATE DATABASE {SNAPSHOT} TEMPLATE {DATABASE}")
        yield server
    finally:
        server.stop()


def run_demo(
    out: Path, captures: Path, notify: Notify | None = None, migrations: Path | None = None
) -> RunResult:
    """Capture the old app's traffic, replay it against the new migrations, report."""
    say: Notify = notify or (lambda message: None)
    capture_dir = captures / "demo"
    if capture_dir.exists() and any(capture_dir.iterdir()):
        # A capture folder gathers segments from every run; the demo wants only its own.
        for segment in capture_dir.glob("*.jsonl"):
            segment.unlink()
    with production(say) as server:
        proxy = CaptureProcess(f"127.0.0.1:{server.port}", capture_dir)
        say(f"starting the capture proxy in front of it, recording into {capture_dir}")
        with proxy:
            say("running the old application's workload through the proxy")
            try:
                workload.run(proxy.url(DATABASE))
            except psycopg.Error as exc:
                raise SetupError(f"the demo workload failed: {exc}") from exc
        folder = migrations or demo_files() / "migrations"
        say(f"replaying the capture against the migrations in {folder}")
        options = RunOptions(
            capture=capture_dir,
            out=out,
            source=server.url(SNAPSHOT),
            scratch=server.url(),
            migrations=folder,
            jobs=4,
        )
        return run_replay(options, notify=say)
