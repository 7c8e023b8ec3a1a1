"""Pipelined replay against a real server: statements in flight together, the same
outcomes as one at a time, timings sampled well enough to find a slower class, and
encrypted targets left to libpq."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from capture_builder import INT4, SessionScript, write_capture
from conftest import two_targets
from psycopg.conninfo import make_conninfo
from tls_front import TlsFront

from replay.capture.split import split_capture
from replay.compare import Verdict, classify
from replay.engine import EngineOptions, replay
from replay.engine.loop import _plaintext
from replay.engine.pipeline import PipelinedConnection
from replay.engine.startup import Timeouts
from replay.model.outcomes import OutcomeRow, iter_outcomes
from replay.model.records import Session, Statement
from replay.targets.target import Target
from replay.wire.digest import RowDigest

SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL DEFAULT 0);
INSERT INTO items SELECT i, 'item ' || i, i % 7 FROM generate_series(1, 50) i;
"""


@pytest.fixture
def targets(pg_server) -> Iterator[list[Target]]:
    yield from two_targets(pg_server, SCHEMA)


def replay_rows(
    tmp_path: Path, targets: list[Target], sessions: list[SessionScript], **options
) -> dict[tuple[str, int], OutcomeRow]:
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    capture = write_capture(out / "capture", sessions)
    work = out / "split"
    work.mkdir()
    replay(split_capture(capture, work), targets, out / "report", EngineOptions(**options))
    return {(row.session, row.seq): row for row in iter_outcomes(out / "report")}


def digest_of(*rows: list[bytes | None]) -> str:
    digest = RowDigest()
    for row in rows:
        digest.add_values(row)
    return digest.unordered


def statement(sql: str, seq: int = 1) -> Statement:
    return Statement(session="s", seq=seq, start=0.0, sql=sql)


def test_several_statements_are_in_flight_and_answered_in_order(targets) -> None:
    connection = PipelinedConnection(targets[0], Timeouts(), depth=8)
    assert connection.connect(Session(id="s", start=0.0))
    try:
        sqls = ["SELECT pg_sleep(0.2)", "SELECT 1", "SELECT 2 / 0", "SELECT 3"]
        for seq, sql in enumerate(sqls, 1):
            connection.send(statement(sql, seq))
        connection.flush()
        assert connection.in_flight == 4  # all sent, none answered yet
        answers = []
        deadline = time.monotonic() + 10
        while len(answers) < 4 and time.monotonic() < deadline:
            answers += connection.poll()
            time.sleep(0.005)
        assert [a.outcomes[0].status for a in answers] == ["ok", "ok", "error", "ok"]
        assert answers[2].outcomes[0].sqlstate == "22012"
        assert [a.outcomes[0].tag for a in answers] == ["SELECT 1", "SELECT 1", None, "SELECT 1"]
        assert connection.in_flight == 0
    finally:
        connection.close()


def mixed_workload() -> list[SessionScript]:
    """Every kind of request, many times over, in two sessions."""
    sessions = []
    for name in ("a", "b"):
        s = SessionScript(name)
        for i in range(1, 41):
            s.simple(f"SELECT name, qty FROM items WHERE id = {i}")
            s.extended(
                "SELECT qty + $1 FROM items WHERE id = $2", [b"1", b"%d" % i], types=[INT4, INT4]
            )
            s.extended(
                "SELECT name FROM items WHERE id = $1", [b"%d" % i], types=[INT4], name="by_id"
            )
            s.extended(
                "SELECT missing FROM items WHERE id = $1", [b"1"], types=[INT4], name="broken"
            )
            s.simple("BEGIN", tx_status="T")
            s.simple(f"UPDATE items SET qty = qty + 1 WHERE id = {i}", tx_status="T")
            if i % 5 == 0:
                s.simple("SELECT 1 / 0", tx_status="E")
                s.simple("SELECT 1", tx_status="E")
            s.simple("COMMIT")
            if i % 10 == 0:
                s.batch(
                    "SELECT 1; SELECT 2 / 0; SELECT 3", ["SELECT 1", "SELECT 2 / 0", "SELECT 3"]
                )
                s.simple("DEALLOCATE by_id")
                s.simple("")
                s.simple("COPY (SELECT id, qty FROM items ORDER BY id) TO STDOUT")
        sessions.append(s)
    return sessions


def _comparable(rows: dict[tuple[str, int], OutcomeRow]) -> dict[tuple[str, int], list[object]]:
    return {
        key: [
            (o.status, o.tag, o.rows, o.columns, o.digest_unordered, o.sqlstate)
            for o in row.outcomes.values()
        ]
        + [row.cascade_of]
        for key, row in rows.items()
    }


def test_pipelined_and_one_at_a_time_give_the_same_outcomes(tmp_path, targets) -> None:
    # Each session's own rows only: the two sessions update different ids in turn.
    def fresh() -> None:
        for target in targets:
            with psycopg.connect(target.conninfo, autocommit=True) as conn:
                conn.execute("DROP TABLE items")
                conn.execute(SCHEMA)

    one_at_a_time = replay_rows(tmp_path, targets, mixed_workload(), depth=1, jobs=1)
    fresh()
    pipelined = replay_rows(tmp_path, targets, mixed_workload(), timing=(0, 0), jobs=1)
    assert len(pipelined) == len(one_at_a_time) > 600
    assert _comparable(pipelined) == _comparable(one_at_a_time)
    statuses = {o.status for row in pipelined.values() for o in row.outcomes.values()}
    assert statuses == {"ok", "error", "skipped"}  # skipped: the batch's failed tail
    broken = pipelined["a", 4].outcomes["candidate"]
    assert (broken.status, broken.sqlstate) == ("error", "42703")
    # Untimed statements were in flight with others: they carry no duration.
    durations = [o.duration for row in pipelined.values() for o in row.outcomes.values()]
    assert durations.count(None) > len(durations) // 2


def test_a_slower_class_is_found_from_sampled_timings(tmp_path, pg_server, targets) -> None:
    """Dropping an index makes one class slower: found although most statements of the
    class were pipelined and untimed."""
    for target in targets:
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE events (id int, kind int, payload text);"
                "INSERT INTO events SELECT i, i % 1000, repeat('x', 50)"
                " FROM generate_series(1, 200000) i;"
                "CREATE INDEX events_kind ON events (kind); ANALYZE events"
            )
    with psycopg.connect(targets[1].conninfo, autocommit=True) as conn:
        conn.execute("DROP INDEX events_kind")
    s = SessionScript("s")
    for i in range(400):
        s.simple(f"SELECT count(*) FROM events WHERE kind = {i}")
        s.simple(f"SELECT name FROM items WHERE id = {i % 50 + 1}")
    out = tmp_path / "report"
    capture = write_capture(tmp_path / "capture", [s])
    (tmp_path / "split").mkdir()
    replay(split_capture(capture, tmp_path / "split"), targets, out, EngineOptions(jobs=1))
    rows = list(iter_outcomes(out))
    timed = [r for r in rows if r.outcomes["candidate"].duration is not None]
    assert 64 <= len(timed) < len(rows) // 2  # sampled: 32 of each class, then 1 in 16
    assert all(r.outcomes["baseline"].duration is not None for r in timed)
    verdicts = {c.sql.split(" FROM ")[1][:6]: c.verdict for c in classify(out).classes}
    assert verdicts == {"events": Verdict.SLOWER, "items ": Verdict.OK}


def test_encrypted_targets_are_replayed_through_libpq(tmp_path, pg_server, targets) -> None:
    """Over TLS the socket's bytes are libpq's own: the replay must not write on it."""
    front = TlsFront(pg_server.port, tmp_path)
    try:
        encrypted = [
            Target(t.name, make_conninfo(t.conninfo, port=front.port, sslmode="require"))
            for t in targets
        ]
        assert _plaintext(targets[0], Timeouts())
        assert not _plaintext(encrypted[0], Timeouts())
        s = SessionScript("s")
        for i in range(1, 51):
            s.simple(f"SELECT name FROM items WHERE id = {i}")
        rows = replay_rows(tmp_path, encrypted, [s])
        assert front.tls_connections >= 2
        assert len(rows) == 50
        for (_, seq), row in rows.items():
            for outcome in row.outcomes.values():
                assert outcome.digest_unordered == digest_of([b"item %d" % seq])
                assert outcome.duration is not None  # one at a time: every one timed
    finally:
        front.close()
