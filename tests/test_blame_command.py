"""Blame through ``--migrate-cmd``: the tool's statements are recorded by the proxy."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import psycopg
from conftest import CaptureProxy, PgServer

from replay.run import RunOptions, run_replay
from replay.targets.recorded_command import ran_statements

# A stand-in for any migration tool: its own client, its own transaction, its own
# bookkeeping query with a bound parameter, none of it in a file we could split.
TOOL = """
import os, psycopg
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("select 1 from pg_tables where tablename = %s", ["items"])
    conn.execute("alter table items add column note text")
    conn.execute("alter table items rename column name to title")
    conn.execute("create index items_note on items (note)")
"""


def test_migrate_cmd_statements_are_recorded_and_blamed(
    capture_proxy: CaptureProxy, pg_server: PgServer, tmp_path: Path
) -> None:
    db = pg_server.create_database()
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as conn:
        conn.execute("create table items (id int primary key, name text)")
        conn.execute("insert into items select i, 'item ' || i from generate_series(1, 9) i")
    snapshot = pg_server.create_database()
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute(f'drop database "{snapshot}"')
        admin.execute(f'create database "{snapshot}" template "{db}"')
    with psycopg.connect(capture_proxy.url(db), autocommit=True) as app:
        app.execute("select name from items where id = %s", [1])
        app.execute("select count(*) from items")
    capture_proxy.stop()
    (tmp_path / "tool.py").write_text(TOOL)

    tool = f"{shlex.quote(sys.executable)} {shlex.quote(str(tmp_path / 'tool.py'))}"
    result = run_replay(RunOptions(
        capture=capture_proxy.out, out=tmp_path / "report", source=pg_server.dsn(snapshot),
        scratch=pg_server.url, migrate_cmd=tool, jobs=1,
    ))  # fmt: skip
    (migration,) = result.migrations
    assert migration.statements == (
        "alter table items add column note text",
        "alter table items rename column name to title",
        "create index items_note on items (note)",
    )
    broken = [c for c in result.findings.classes if c.verdict == "fails"]
    assert [c.sql for c in broken] == ["select name from items where id = $1"]
    assert broken[0].blame is not None
    assert broken[0].blame["statement"] == "alter table items rename column name to title"
    assert result.exit_code == 1


def test_recorded_statements_leave_out_reads_and_transaction_control(tmp_path: Path) -> None:
    from replay.capture.format import CaptureWriter
    from replay.model.records import ErrorInfo, Statement

    with CaptureWriter(tmp_path / "cap") as writer:
        for seq, sql in enumerate(
            [
                "BEGIN",
                "select * from t",
                "alter table t add c int",
                "show search_path",
                "set search_path = app",
                "drop table nope",
                "COMMIT",
            ],
            1,
        ):
            error = ErrorInfo("42P01", "missing") if "nope" in sql else None
            writer.write(Statement("s", seq, float(seq), sql, error=error))
        writer.write(
            Statement("s", 8, 8.0, "update v set x = $1", protocol="extended", params=["1"])
        )
    assert ran_statements(tmp_path / "cap") == ("alter table t add c int", "set search_path = app")
