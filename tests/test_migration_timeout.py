"""Migrations cannot hang the run: ``--migration-timeout`` (issue 13, point 3).

Against a real server: a migration statement that sleeps past the timeout is cancelled
(even when the migration turned its own ``statement_timeout`` off) and the run stops
with one line naming the file and the statement, exit 2; a ``--migrate-cmd`` that runs
too long is killed with everything it started.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from pathlib import Path

import psutil
import psycopg
import pytest
from capture_builder import SessionScript, write_capture
from click.testing import CliRunner

from replay.errors import MigrationError
from replay.targets import migrate
from replay.targets.server import tool

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # mitmproxy's imports, see test_run_cli
    from replay.cli import cli

SLEEPY = """SET statement_timeout = 0;
CREATE TABLE audit (id int);
SELECT pg_sleep(600);
"""


def folder_with(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.sql").write_text(text)
    return folder


def replay_databases(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'replay%'")
        return {r[0] for r in rows}


@pytest.fixture
def source(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1)")
    return dsn


def test_a_statement_past_the_timeout_is_cancelled_and_named(tmp_path: Path, dsn: str) -> None:
    folder = folder_with(tmp_path, **{"001_ok": "CREATE TABLE a (id int);", "002_slow": SLEEPY})
    started = time.monotonic()
    with pytest.raises(MigrationError) as failed:
        migrate.apply_folder(dsn, folder, timeout=1)
    assert time.monotonic() - started < 30
    assert str(failed.value) == (
        "migration 002_slow.sql timed out after 1 s "
        "(statement 3: SELECT pg_sleep(600)); see --migration-timeout"
    )
    with psycopg.connect(dsn) as conn:
        tables = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r'")}
        sleeping = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"
        ).fetchone()
    assert "a" in tables and "audit" not in tables  # the slow file's transaction rolled back
    assert sleeping == (0,)


def test_statements_within_the_timeout_apply(tmp_path: Path, dsn: str) -> None:
    folder = folder_with(tmp_path, **{"001": "SELECT pg_sleep(0.2); CREATE TABLE b (id int);"})
    migrate.apply_folder(dsn, folder, timeout=5)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('b') IS NOT NULL").fetchone() == (True,)


def test_a_migrate_command_past_the_timeout_is_killed_with_its_children(
    tmp_path: Path, dsn: str
) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"sleep 600 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    with pytest.raises(MigrationError) as failed:
        migrate.run_command(dsn, command, timeout=1)
    assert time.monotonic() - started < 30
    assert str(failed.value) == (
        f"migration command {command!r} timed out after 1 s and was killed; "
        "see --migration-timeout"
    )
    # SIGKILL is sent to the group at once; the kernel takes a moment to carry it out.
    with contextlib.suppress(psutil.NoSuchProcess):  # already gone
        _, still = psutil.wait_procs([psutil.Process(int(pid_file.read_text()))], timeout=5)
        assert [p for p in still if p.status() != psutil.STATUS_ZOMBIE] == []


def test_run_stops_with_one_line_and_drops_the_clones(
    tmp_path: Path, pg_server, source: str
) -> None:
    session = SessionScript("s1", database="shop")
    session.simple("SELECT count(*) FROM items")
    capture = write_capture(tmp_path / "capture", [session])
    folder = folder_with(tmp_path, **{"001_slow": SLEEPY})
    before = replay_databases(pg_server.url)
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        [
            "run", "--capture", str(capture), "--out", str(tmp_path / "out"),
            "--source", source, "--scratch", pg_server.url, "--no-noise",
            "--migrations", str(folder), "--migration-timeout", "1",
        ],
    )  # fmt: skip
    assert time.monotonic() - started < 60
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last == (
        "Error: migration 001_slow.sql timed out after 1 s "
        "(statement 3: SELECT pg_sleep(600)); see --migration-timeout"
    )
    assert replay_databases(pg_server.url) == before
    assert not (tmp_path / "out").exists()  # made by the run, nothing written into it


def test_run_kills_a_migrate_command_past_the_timeout(
    tmp_path: Path, pg_server, source: str
) -> None:
    session = SessionScript("s1", database="shop")
    session.simple("SELECT count(*) FROM items")
    capture = write_capture(tmp_path / "capture", [session])
    # A tool holding a statement open on the candidate, as a stuck migration tool does.
    command = f"{tool('psql')} -c 'SELECT pg_sleep(600)'"
    result = CliRunner().invoke(
        cli,
        [
            "run", "--capture", str(capture), "--out", str(tmp_path / "out"),
            "--source", source, "--scratch", pg_server.url, "--no-noise",
            "--migrate-cmd", command, "--migration-timeout", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: migration command {command!r} timed out after 1 s and was killed; "
        "see --migration-timeout"
    )



def test_a_run_that_fails_marks_an_existing_out_folder_failed(
    tmp_path: Path, pg_server, source: str
) -> None:
    """The folder was there before (a previous run's reports): it now says this run
    failed, and ``replay report`` refuses it rather than re-render stale outcomes."""
    session = SessionScript("s1", database="shop")
    session.simple("SELECT count(*) FROM items")
    capture = write_capture(tmp_path / "capture", [session])
    out = tmp_path / "out"
    out.mkdir()
    (out / "outcomes.jsonl").write_text("")
    folder = folder_with(tmp_path, **{"001_slow": SLEEPY})
    result = CliRunner().invoke(
        cli,
        [
            "run", "--capture", str(capture), "--out", str(out), "--source", source,
            "--scratch", pg_server.url, "--no-noise", "--migrations", str(folder),
            "--migration-timeout", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "failed"
    assert run["reason"].startswith("migration 001_slow.sql timed out after 1 s")
    report = CliRunner().invoke(cli, ["report", str(out)])
    assert report.exit_code == 2
    assert report.output.startswith(
        f"Error: {out} holds the partial outcomes of a run that did not finish (failed, "
    )
