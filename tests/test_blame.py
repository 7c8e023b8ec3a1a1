"""Blame on a folder of several migrations, against real PostgreSQL clones."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from capture_builder import INT4, SessionScript, write_capture
from conftest import PgServer

from replay.blame import blame
from replay.compare import Verdict, classify
from replay.run import RunOptions, run_replay
from replay.sql.fingerprint import fingerprint

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int);
INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, 20) i;
"""
READ_NAME = "SELECT name FROM customers WHERE id = $1"
NEW_ORDER = "INSERT INTO orders (id, customer_id) VALUES ($1, $2)"
MIGRATIONS = {
    "001_index.sql": "CREATE INDEX ON customers (name);",
    "002_note.sql": "ALTER TABLE orders ADD COLUMN note text;",
    # The breaking statement sits in the middle of a multi-statement file.
    "003_rename.sql": (
        "CREATE TABLE audit (id int);\n"
        "ALTER TABLE customers RENAME COLUMN name TO full_name;\n"
        "CREATE INDEX ON orders (customer_id);\n"
    ),
    "004_stats.sql": "ANALYZE customers;",
    # Breaks NEW_ORDER only together with 002, which adds the column.
    "005_require_note.sql": (
        "CREATE TABLE t5 (id int);\nALTER TABLE orders ALTER COLUMN note SET NOT NULL;"
    ),
}


@pytest.fixture
def run_folder(tmp_path: Path, pg_server: PgServer, dsn: str) -> Path:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    sessions = []
    for i in range(2):
        script = SessionScript(f"s{i}", start=1_700_000_000.0 + i, database="shop")
        script.extended(READ_NAME, [str(i + 1).encode()], types=[INT4])
        script.extended(NEW_ORDER, [str(i + 1).encode(), b"1"], types=[INT4, INT4])
        sessions.append(script)
    capture = write_capture(tmp_path / "capture", sessions)
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(text)
    out = tmp_path / "reports" / "shop"
    run_replay(
        RunOptions(capture=capture, out=out, source=dsn, scratch=pg_server.url, migrations=folder)
    )
    return out


def test_blame_names_the_file_and_statement(
    run_folder: Path, pg_server: PgServer, dsn: str
) -> None:
    verdicts = {c.fingerprint: c.verdict for c in classify(run_folder).classes}
    assert verdicts[fingerprint(READ_NAME)] is Verdict.FAILS
    assert verdicts[fingerprint(NEW_ORDER)] is Verdict.FAILS
    blamed = blame(run_folder, source=dsn, scratch=pg_server.url)

    rename = blamed[fingerprint(READ_NAME)]
    assert rename["migration"] == "003_rename.sql"
    assert rename["statement_index"] == 1
    assert rename["statement"] == "ALTER TABLE customers RENAME COLUMN name TO full_name"
    assert "migrations" not in rename

    not_null = blamed[fingerprint(NEW_ORDER)]
    assert not_null["migration"] == "005_require_note.sql"
    assert not_null["statement_index"] == 1
    assert not_null["migrations"] == ["002_note.sql", "005_require_note.sql"]

    saved = json.loads((run_folder / "blame.json").read_text())
    assert saved == blamed
    findings = classify(run_folder).to_json()
    by_class = {c["fingerprint"]: c for c in findings["classes"]}
    assert by_class[fingerprint(READ_NAME)]["blame"]["migration"] == "003_rename.sql"
    with psycopg.connect(pg_server.url) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'replay_blame%'")
        assert left.fetchone() == (0,)
