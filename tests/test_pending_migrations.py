"""Only the pending migrations of a SQL folder, on a snapshot that has the others (issue 13,
point 9): the nightly job's snapshot already ran most of the folder."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from capture_builder import SessionScript, write_capture
from click.testing import CliRunner

from replay.cli import cli
from replay.targets.migrate import version_of


@pytest.mark.parametrize(
    "name, version",
    [("001_create.sql", "1"), ("20151129054053_add.sql", "20151129054053"),
     ("3_x.up.sql", "3"), ("baseline.sql", "baseline")],
)  # fmt: skip
def test_a_files_version_is_its_leading_number(name: str, version: str) -> None:
    assert version_of(name) == version


def _setup(dsn: str, tmp_path: Path) -> tuple[Path, Path]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 9) i")
        conn.execute("CREATE TABLE schema_migrations (version varchar PRIMARY KEY)")
        conn.execute("INSERT INTO schema_migrations VALUES ('0001')")  # 001 ran already
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_items.sql").write_text("CREATE TABLE items (id int PRIMARY KEY, name text);")
    (migrations / "002_rename.sql").write_text("ALTER TABLE items RENAME COLUMN name TO title;")
    script = SessionScript("s")
    script.simple("SELECT name FROM items WHERE id = 3")
    return write_capture(tmp_path / "capture", [script]), migrations


def test_only_the_migrations_the_snapshot_has_not_recorded_are_applied(
    dsn: str, tmp_path: Path
) -> None:
    capture, migrations = _setup(dsn, tmp_path)
    args = ["run", "--capture", str(capture), "--source", dsn, "--migrations", str(migrations)]
    result = CliRunner().invoke(
        cli, [*args, "--applied-versions", "schema_migrations", "--out", str(tmp_path / "r")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # the pending rename breaks the old query
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert [m["name"] for m in run["migrations"]] == ["002_rename.sql"]
    # Without it, the folder's first file fails on the snapshot that already has it.
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "r2")], catch_exceptions=False)
    assert result.exit_code == 2 and "001_items.sql" in result.output, result.output


def test_an_unreadable_versions_table_is_one_line(dsn: str, tmp_path: Path) -> None:
    capture, migrations = _setup(dsn, tmp_path)
    result = CliRunner().invoke(
        cli,
        ["run", "--capture", str(capture), "--source", dsn, "--migrations", str(migrations),
         "--applied-versions", "nope:version", "--out", str(tmp_path / "r")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--applied-versions nope:version" in result.output
