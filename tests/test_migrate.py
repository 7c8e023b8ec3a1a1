"""Applying migrations to the candidate: files in order, opt-out of the transaction, commands."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

from replay.errors import BadInput, MigrationError
from replay.targets import migrate


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def columns(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position",
            (table,),
        )
        return [r[0] for r in rows]


def test_files_apply_in_name_order_and_are_split(tmp_path, dsn):
    folder = tmp_path / "m"
    write(folder, "002_add.sql", "ALTER TABLE t ADD COLUMN b int;\nALTER TABLE t ADD COLUMN c int;")
    write(folder, "001_create.sql", "-- the table\nCREATE TABLE t (a int);")
    write(folder, "README.md", "not a migration")
    applied = migrate.apply_folder(dsn, folder)
    assert [m.name for m in applied] == ["001_create.sql", "002_add.sql"]
    assert applied[1].statements == (
        "ALTER TABLE t ADD COLUMN b int",
        "ALTER TABLE t ADD COLUMN c int",
    )
    assert columns(dsn, "t") == ["a", "b", "c"]


def test_a_failing_file_rolls_back_and_names_file_and_statement(tmp_path, dsn):
    folder = tmp_path / "m"
    write(folder, "001.sql", "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN a int;")
    with pytest.raises(MigrationError) as raised:
        migrate.apply_folder(dsn, folder)
    message = str(raised.value)
    assert "001.sql" in message and "statement 2" in message and "42701" in message
    assert "\n" not in message
    assert columns(dsn, "t") == []  # its own transaction: nothing of it stays


def test_no_transaction_files_run_statement_by_statement(tmp_path, dsn):
    folder = tmp_path / "m"
    write(folder, "001.sql", "CREATE TABLE t (a int);")
    write(
        folder,
        "002.sql",
        "-- replay: no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n"
        "CREATE INDEX CONCURRENTLY t_a2 ON t (a);",
    )
    applied = migrate.apply_folder(dsn, folder)
    assert not applied[1].transactional
    with psycopg.connect(dsn) as conn:
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 't'").fetchall()
    assert {r[0] for r in indexes} == {"t_a", "t_a2"}


def test_a_file_with_its_own_transactions_is_not_wrapped(tmp_path, dsn):
    folder = tmp_path / "m"
    write(folder, "001.sql", "BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;")
    [migration] = migrate.apply_folder(dsn, folder)
    assert not migration.transactional
    assert columns(dsn, "t") == ["a"]


def test_a_missing_folder_is_bad_input(tmp_path, dsn):
    with pytest.raises(BadInput):
        migrate.apply_folder(dsn, tmp_path / "nope")


def test_a_command_gets_the_candidate_in_its_environment(tmp_path, dsn):
    script = (
        "import os, psycopg;"
        "psycopg.connect(os.environ['DATABASE_URL'], autocommit=True)"
        ".execute('CREATE TABLE from_url (a int)');"
        "psycopg.connect(autocommit=True).execute('CREATE TABLE from_pg_vars (a int)')"
    )
    migration = migrate.run_command(dsn, f'{sys.executable} -c "{script}"')
    assert migration.command is not None
    assert columns(dsn, "from_url") == ["a"] and columns(dsn, "from_pg_vars") == ["a"]


def test_a_failing_command_names_itself_and_its_last_words(dsn):
    with pytest.raises(MigrationError, match="migration command") as raised:
        migrate.run_command(dsn, "echo 'relation foo does not exist' >&2; exit 3")
    assert "relation foo does not exist" in str(raised.value)


def test_database_url_keeps_password_and_socket_hosts():
    env = migrate.command_environment("host=/run/pg port=5433 user=me password=p@ss dbname=app")
    assert env["DATABASE_URL"] == "postgresql://me:p%40ss@/app?host=%2Frun%2Fpg&port=5433"
    assert (env["PGHOST"], env["PGPORT"], env["PGPASSWORD"]) == ("/run/pg", "5433", "p@ss")
    env = migrate.command_environment("host=::1 port=5432 user=me dbname=app")
    assert env["DATABASE_URL"] == "postgresql://me@[::1]:5432/app"
    assert "PGPASSWORD" not in env  # none given: none inherited
