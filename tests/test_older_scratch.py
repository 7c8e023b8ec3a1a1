"""A scratch server of an older major version than the wheel's client tools (issue 13, 4).

The wheel's pg_dump and pg_restore are newer than many production servers, and a newer
pg_restore writes settings an older server does not know (``transaction_timeout``, new in
PostgreSQL 17). A scratch server of the source's major version must work; one older than
the source is a clear error before anything is dumped. The older server comes from the
distribution's packages (``.ci/run`` installs postgresql-15): never skipped.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from capture_builder import SessionScript, write_capture
from click.testing import CliRunner
from conftest import PgServer

from replay.cli import cli
from replay.targets.server import EmbeddedServer, major_version

pytestmark = pytest.mark.slow


def _older_bin() -> Path:
    """The bin folder of an installed PostgreSQL older than the wheel's tools."""
    wheel = major_version(None)
    found = sorted(
        Path(p).parent
        for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if major_version(Path(p).parent) < wheel
    )
    assert found, "an older PostgreSQL is required (apt-get install postgresql-15; .ci/run does it)"
    return found[0]


@pytest.fixture(scope="module")
def older_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(bin=_older_bin()) as server:
        yield server


def _run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def _app(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 20) i")


def test_a_scratch_server_of_the_sources_older_major_version_works(
    older_server: EmbeddedServer, tmp_path: Path
) -> None:
    with psycopg.connect(older_server.url(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE shop")
        version = admin.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(str(version[0])) < 170000  # no transaction_timeout
    _app(older_server.url("shop"))
    script = SessionScript("s", database="shop")
    script.simple("SELECT name FROM items WHERE id = 3")
    capture = write_capture(tmp_path / "capture", [script])
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_rename.sql").write_text("ALTER TABLE items RENAME COLUMN name TO title;\n")
    code, output = _run(
        "--capture", capture, "--source", older_server.url("shop"),
        "--scratch", older_server.url(), "--migrations", migrations, "--out", tmp_path / "r",
    )  # fmt: skip
    assert code == 1, output  # the renamed column breaks the old query: found, not exit 2
    assert "transaction_timeout" not in output


def test_a_scratch_server_older_than_the_source_is_refused_before_the_dump(
    older_server: EmbeddedServer, pg_server: PgServer, dsn: str, tmp_path: Path
) -> None:
    _app(dsn)
    script = SessionScript("s")
    script.simple("SELECT name FROM items WHERE id = 3")
    capture = write_capture(tmp_path / "capture", [script])
    code, output = _run(
        "--capture", capture, "--source", dsn, "--scratch", older_server.url(),
        "--migrations", tmp_path, "--out", tmp_path / "r",
    )  # fmt: skip
    assert code == 2, output
    assert "older than the source" in output
    assert "dumping" not in output
