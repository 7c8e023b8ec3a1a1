"""Blame on a folder of several migrations, against real PostgreSQL clones, within the run."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from capture_builder import INT4, SessionScript, write_capture
from conftest import PgServer

from replay.blame.bisect import Plan, blame_class
from replay.blame.probes import example_sessions
from replay.capture.split import read_session, read_statements, split_capture
from replay.compare import Verdict, classify
from replay.run import RunOptions, RunResult, run_replay
from replay.sql.fingerprint import fingerprint
from replay.targets import clone
from replay.targets.migrate import Migration

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


@dataclass
class BlamedRun:
    result: RunResult
    dumps: list[str]


def counting_pg_dump(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Make every pg_dump the clones run go through a wrapper that logs each run."""
    log = folder / "pg_dump.log"
    real_tool = clone.tool
    wrapper = folder / "pg_dump"
    wrapper.write_text(
        f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real_tool("pg_dump")}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(
        clone, "tool", lambda name: str(wrapper) if name == "pg_dump" else real_tool(name)
    )
    return log


@pytest.fixture
def blamed_run(
    tmp_path: Path, pg_server: PgServer, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> BlamedRun:
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
    log = counting_pg_dump(monkeypatch, tmp_path)
    out = tmp_path / "reports" / "shop"
    result = run_replay(
        RunOptions(capture=capture, out=out, source=dsn, scratch=pg_server.url, migrations=folder)
    )
    dumps = log.read_text().splitlines() if log.exists() else []
    return BlamedRun(result, dumps)


def test_blame_names_the_file_and_statement(blamed_run: BlamedRun, pg_server: PgServer) -> None:
    result = blamed_run.result
    classes = {c.fingerprint: c for c in result.findings.classes}
    assert classes[fingerprint(READ_NAME)].verdict is Verdict.FAILS
    assert classes[fingerprint(NEW_ORDER)].verdict is Verdict.FAILS

    rename = classes[fingerprint(READ_NAME)].blame
    assert rename is not None
    assert rename["migration"] == "003_rename.sql"
    assert rename["statement_index"] == 1
    assert rename["statement"] == "ALTER TABLE customers RENAME COLUMN name TO full_name"
    assert "migrations" not in rename

    not_null = classes[fingerprint(NEW_ORDER)].blame
    assert not_null is not None
    assert not_null["migration"] == "005_require_note.sql"
    assert not_null["statement_index"] == 1
    assert not_null["migrations"] == ["002_note.sql", "005_require_note.sql"]

    # The report folder says the same, and re-renders it without a database.
    folder = result.report_folder
    saved = json.loads((folder / "blame.json").read_text())
    assert saved == {fp: c.blame for fp, c in classes.items() if c.blame}
    findings = json.loads((folder / "findings.json").read_text())
    assert findings == classify(folder).to_json() == result.findings.to_json()
    by_class = {c["fingerprint"]: c for c in findings["classes"]}
    assert by_class[fingerprint(READ_NAME)]["blame"]["migration"] == "003_rename.sql"
    with psycopg.connect(pg_server.url) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'replay_%'")
        assert left.fetchall() == []  # the clones, the pristine template and every probe


def test_a_blamed_run_dumps_the_source_once(blamed_run: BlamedRun) -> None:
    assert blamed_run.result.findings.classes[0].blame is not None
    assert len(blamed_run.dumps) == 1, blamed_run.dumps


class TableProbes:
    """Probes answered from a rule instead of databases: what breaks, given a plan."""

    def __init__(self, sizes: list[int], breaks: set[tuple[int, int]]) -> None:
        self.migrations = [
            Migration(f"{i:03d}.sql", statements=tuple(f"s{i}.{j}" for j in range(n)))
            for i, n in enumerate(sizes)
        ]
        self.rule = breaks  # every (file, statement) of it applied together breaks
        self.asked: list[Plan] = []

    def breaks(self, plan: Plan, fingerprint: str) -> bool:
        self.asked.append(plan)
        applied = {(i, j) for i, count in plan for j in range(count)}
        return self.rule <= applied


def test_bisection_names_one_statement() -> None:
    probes = TableProbes([1, 3, 2, 4], {(2, 1)})
    blame = blame_class(probes, "class")
    assert blame == {
        "migration": "002.sql",
        "path": None,
        "statement_index": 1,
        "statement": "s2.1",
    }


def test_bisection_finds_files_that_break_only_together() -> None:
    probes = TableProbes([1, 2, 1, 3], {(1, 0), (3, 2)})
    blame = blame_class(probes, "class")
    assert blame is not None
    assert (blame["migration"], blame["statement_index"]) == ("003.sql", 2)
    assert blame["migrations"] == ["001.sql", "003.sql"]


def test_nothing_is_blamed_when_all_migrations_together_do_not_break() -> None:
    probes = TableProbes([2, 2], {(2, 0)})  # a statement no plan applies
    assert blame_class(probes, "class") is None
    assert probes.asked == [((0, 2), (1, 2))]


def test_probes_replay_the_example_sessions_up_to_the_last_example(tmp_path: Path) -> None:
    scripts = []
    for i in range(3):
        script = SessionScript(f"s{i}", start=1_700_000_000.0 + i)
        for n in range(4):
            script.simple(f"SELECT {n}", start=1_700_000_000.0 + i + n)
        scripts.append(script)
    (tmp_path / "run").mkdir()
    split = split_capture(write_capture(tmp_path / "capture", scripts), tmp_path / "run")
    (tmp_path / "probes").mkdir()
    # Examples: s0's third statement (t+2) and s2's first (t+2): the last starts at t+2.
    cut = example_sessions(split, {("s0", 3), ("s2", 1)}, tmp_path / "probes")
    kept = {
        read_session(s.path).id: [(st.seq, st.sql) for st in read_statements(s.path)]
        for s in cut.sessions
    }
    assert kept == {
        "s0": [(1, "SELECT 0"), (2, "SELECT 1"), (3, "SELECT 2")],
        "s2": [(1, "SELECT 0")],
    }
    assert cut.statements == 4 and cut.last == 1_700_000_002.0
    assert all(s.path.parent == tmp_path / "probes" for s in cut.sessions)
    assert split.statements == 12  # the run's own files are left as they were
