"""The replay engine against a real PostgreSQL: faithful sending, outcomes, robustness."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from capture_builder import INT4, TEXT, SessionScript, int4, write_capture
from conftest import two_targets

from replay.capture.split import _Handles, read_session, read_statements, split_capture
from replay.engine import EngineOptions, Timeouts, replay
from replay.model.outcomes import OutcomeRow, iter_outcomes, merge_parts, part_path
from replay.model.selection import Selection
from replay.sql.fingerprint import fingerprint
from replay.targets.target import Target
from replay.wire.digest import RowDigest

SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL DEFAULT 0);
INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5);
"""


@pytest.fixture
def targets(pg_server) -> Iterator[list[Target]]:
    yield from two_targets(pg_server, SCHEMA)


# Each test runs with every connection kind: libpq one statement at a time, pipelined
# with timed statements sampled (the default), and pipelined with no statement sent
# alone to be timed (so that everything that can be in flight together is).
MODES = {
    "libpq": {"depth": 1},
    "pipelined": {},
    "pipelined-untimed": {"timing": (0, 0)},
}
_mode: dict[str, object] = {}


@pytest.fixture(autouse=True, params=list(MODES))
def engine_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    _mode.clear()
    _mode.update(MODES[request.param])
    yield request.param
    _mode.clear()


def run(
    tmp_path: Path, targets: list[Target], sessions: list[SessionScript], **options
) -> dict[tuple[str, int], OutcomeRow]:
    options = {**_mode, **options}
    selection = options.pop("selection", None)
    capture = write_capture(tmp_path / "capture", sessions)
    work = tmp_path / "split"
    work.mkdir(exist_ok=True)
    split = split_capture(capture, work, selection=selection)
    replay(split, targets, tmp_path / "out", EngineOptions(**options))
    return {(row.session, row.seq): row for row in iter_outcomes(tmp_path / "out")}


def digest_of(*rows: list[bytes | None]) -> str:
    digest = RowDigest()
    for row in rows:
        digest.add_values(row)
    return digest.unordered


def test_int4_parameters_replay_in_text_and_binary(tmp_path, targets):
    # A text-only replayer sends $1 + $2 untyped: "operator is not unique: unknown + unknown".
    s = SessionScript("s1")
    s.extended("SELECT $1 + $2", [b"2", b"3"], types=[INT4, INT4])
    s.extended("SELECT $1 + $2", [int4(2), int4(3)], types=[INT4, INT4], formats=[1])
    s.extended("SELECT $1 + $2", [int4(2), int4(3)], types=[INT4, INT4], formats=[1, 1])
    rows = run(tmp_path, targets, [s])
    for seq in (1, 2, 3):
        for target in ("baseline", "candidate"):
            outcome = rows["s1", seq].outcomes[target]
            assert outcome.status == "ok", outcome
            assert outcome.rows == 1
            assert json.loads(outcome.columns) == [["?column?", INT4]]
            assert outcome.digest_unordered == digest_of([b"5"])


def test_binary_result_format_digests_raw_bytes(tmp_path, targets):
    s = SessionScript("s1")
    statement = s.extended("SELECT id FROM items WHERE id = $1", [b"2"], types=[INT4])
    statement.result_formats = [1]
    rows = run(tmp_path, targets, [s])
    assert rows["s1", 1].outcomes["baseline"].digest_unordered == digest_of([int4(2)])


def test_named_prepared_statements_are_prepared_lazily_and_reprepared(tmp_path, targets):
    s = SessionScript("s1")
    s.extended("SELECT name FROM items WHERE id = $1", [b"1"], types=[INT4], name="q")
    s.extended("SELECT name FROM items WHERE id = $1", [b"2"], types=[INT4], name="q")
    s.extended("SELECT qty FROM items WHERE id = $1", [b"2"], types=[INT4], name="q")
    s.simple("DEALLOCATE q")
    s.extended("SELECT qty + 1 FROM items WHERE id = $1", [b"1"], types=[INT4], name="q")
    s.extended("SELECT $1::text", [b"x"], types=[TEXT], name="Other Name")
    rows = run(tmp_path, targets, [s])
    assert [rows["s1", i].outcomes["candidate"].status for i in range(1, 7)] == ["ok"] * 6
    expected = [[b"apple"], [b"pear"], [b"5"], None, [b"4"], [b"x"]]
    for seq, values in enumerate(expected, 1):
        if values is not None:
            assert rows["s1", seq].outcomes["baseline"].digest_unordered == digest_of(values)


def test_multi_statement_batch_is_sent_once_and_mapped(tmp_path, targets):
    s = SessionScript("s1")
    text = (
        "UPDATE items SET qty = qty + 1; SELECT qty FROM items WHERE id = 1; SELECT 1/0; SELECT 2"
    )
    s.batch(
        text,
        [
            "UPDATE items SET qty = qty + 1",
            "SELECT qty FROM items WHERE id = 1",
            "SELECT 1/0",
            "SELECT 2",
        ],
    )
    s.simple("SELECT qty FROM items WHERE id = 1")
    rows = run(tmp_path, targets, [s])
    outcomes = [rows["s1", i].outcomes["candidate"] for i in range(1, 6)]
    assert [o.status for o in outcomes] == ["ok", "ok", "error", "skipped", "ok"]
    assert outcomes[0].tag == "UPDATE 2"
    assert outcomes[1].digest_unordered == digest_of([b"4"])
    assert outcomes[2].sqlstate == "22012"
    # The batch ran as one implicit transaction: its failure rolled the UPDATE back.
    assert outcomes[4].digest_unordered == digest_of([b"3"])


def test_copy_in_and_out(tmp_path, targets):
    s = SessionScript("s1")
    copy = s.simple("COPY items (id, name, qty) FROM STDIN")
    copy.copy_data = __import__("base64").b64encode(b"3\tplum\t7\n4\tfig\t1\n").decode()
    s.simple("COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT")
    rows = run(tmp_path, targets, [s])
    copied_in, copied_out = rows["s1", 1].outcomes["baseline"], rows["s1", 2].outcomes["candidate"]
    assert (copied_in.status, copied_in.tag, copied_in.rows) == ("ok", "COPY 2", 2)
    assert (copied_out.status, copied_out.tag, copied_out.rows) == ("ok", "COPY 4", 4)
    assert copied_out.digest == rows["s1", 2].outcomes["baseline"].digest is not None


def test_statement_timeout_is_an_outcome_and_the_session_goes_on(tmp_path, targets):
    s = SessionScript("s1")
    s.simple("SELECT pg_sleep(5)")
    s.simple("SELECT 1")
    started = time.perf_counter()
    rows = run(tmp_path, targets, [s], timeouts=Timeouts(statement=0.3, lock=0.2))
    assert time.perf_counter() - started < 4
    timed_out = rows["s1", 1].outcomes["candidate"]
    assert (timed_out.status, timed_out.sqlstate) == ("timeout", "57014")
    assert rows["s1", 2].outcomes["candidate"].status == "ok"


def test_lock_timeout_between_sessions(tmp_path, targets):
    holder = SessionScript("holder", start=1_700_000_000.0)
    holder.simple("BEGIN", tx_status="T")
    holder.simple("LOCK TABLE items IN ACCESS EXCLUSIVE MODE", tx_status="T")
    holder.simple("SELECT pg_sleep(1.5)", tx_status="T")
    holder.simple("COMMIT")
    waiter = SessionScript("waiter", start=1_700_000_000.01)
    waiter.simple("SELECT pg_sleep(0.3)")
    waiter.simple("SELECT count(*) FROM items")
    rows = run(
        tmp_path, targets, [holder, waiter], jobs=2, timeouts=Timeouts(statement=5, lock=0.2)
    )
    blocked = rows["waiter", 2].outcomes["baseline"]
    assert (blocked.status, blocked.sqlstate) == ("timeout", "55P03")
    assert rows["holder", 4].outcomes["baseline"].status == "ok"


def _terminate_when_running(dsn: str, needle: str, done: threading.Event) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not done.is_set():
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE %s AND pid <> pg_backend_pid()",
                (f"%{needle}%",),
            ).fetchall()
            if killed:
                return
            time.sleep(0.02)


def test_lost_connection_resumes_at_the_next_transaction(tmp_path, targets):
    s = SessionScript("s1")
    s.simple("BEGIN", tx_status="T")
    s.simple("SELECT pg_sleep(1.5) /* kill me */", tx_status="T")
    s.simple("UPDATE items SET qty = 0", tx_status="T")
    s.simple("COMMIT", tx_status="I")
    s.simple("SELECT qty FROM items WHERE id = 1")
    done = threading.Event()
    killer = threading.Thread(
        target=_terminate_when_running, args=(targets[1].conninfo, "kill me", done)
    )
    killer.start()
    try:
        rows = run(tmp_path, targets, [s])
    finally:
        done.set()
        killer.join()
    candidate = [rows["s1", i].outcomes["candidate"].status for i in range(1, 6)]
    assert candidate == ["ok", "lost", "skipped", "skipped", "ok"]
    assert rows["s1", 5].outcomes["candidate"].digest_unordered == digest_of([b"3"])
    assert [rows["s1", i].outcomes["baseline"].status for i in range(1, 6)] == ["ok"] * 5


def test_cascade_points_at_the_first_failure_of_the_transaction(tmp_path, targets):
    with psycopg.connect(targets[1].conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE items DROP COLUMN qty")
    s = SessionScript("s1")
    s.simple("BEGIN", tx_status="T")
    s.extended("SELECT qty FROM items WHERE id = $1", [b"1"], types=[INT4], tx_status="T")
    s.simple("SELECT name FROM items", tx_status="T")
    s.simple("COMMIT")
    s.simple("SELECT name FROM items")
    rows = run(tmp_path, targets, [s])
    assert rows["s1", 2].outcomes["candidate"].sqlstate == "42703"
    assert rows["s1", 3].outcomes["candidate"].sqlstate == "25P02"
    assert rows["s1", 3].cascade_of == 2
    assert rows["s1", 3].outcomes["baseline"].status == "ok"
    assert rows["s1", 5].cascade_of is None
    assert rows["s1", 5].outcomes["candidate"].status == "ok"


def test_commit_of_a_failed_transaction_cascades_from_its_failure(tmp_path, targets):
    # The candidate answers this COMMIT with ROLLBACK: not a "changed" COMMIT class, but
    # part of what the first failure did.
    with psycopg.connect(targets[1].conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE items DROP COLUMN qty")
    s = SessionScript("s1")
    s.simple("BEGIN", tx_status="T")
    s.simple("UPDATE items SET qty = 1", tx_status="T")
    s.simple("COMMIT")
    s.simple("BEGIN", tx_status="T")
    s.simple("SELECT name FROM items", tx_status="T")
    s.simple("COMMIT")
    rows = run(tmp_path, targets, [s])
    assert rows["s1", 3].outcomes["baseline"].tag == "COMMIT"
    assert rows["s1", 3].outcomes["candidate"].tag == "ROLLBACK"
    assert rows["s1", 3].cascade_of == 2
    assert rows["s1", 6].outcomes["candidate"].tag == "COMMIT"
    assert rows["s1", 6].cascade_of is None


def test_startup_parameters_are_replayed(tmp_path, targets):
    s = SessionScript(
        "s1",
        application_name="billing",
        parameters={
            "application_name": "billing",
            "DateStyle": "SQL, DMY",
            "client_encoding": "UTF8",
            "user": "prod",
            "database": "prod",
        },
    )
    s.simple("SELECT current_setting('application_name'), current_setting('DateStyle')")
    rows = run(tmp_path, targets, [s])
    outcome = rows["s1", 1].outcomes["candidate"]
    assert outcome.digest_unordered == digest_of([b"billing", b"SQL, DMY"])
    assert rows["s1", 1].application_name == "billing"


def test_sessions_run_concurrently_up_to_jobs(tmp_path, targets):
    sessions = []
    for i in range(8):
        s = SessionScript(f"s{i}", start=1_700_000_000.0 + i * 0.001)
        s.simple("SELECT pg_sleep(0.4)")
        sessions.append(s)
    started = time.perf_counter()
    rows = run(tmp_path, targets, sessions, jobs=4)
    elapsed = time.perf_counter() - started
    assert len(rows) == 8
    assert all(r.outcomes["candidate"].status == "ok" for r in rows.values())
    assert elapsed < 8 * 0.4 * 0.6  # two waves of four, not eight in a row


def test_unreplayable_statements_are_skipped(tmp_path, targets):
    s = SessionScript("s1")
    s.simple("COPY items FROM STDIN", replayable=False, note="copy data over the cap")
    s.simple("SELECT 1")
    rows = run(tmp_path, targets, [s])
    assert rows["s1", 1].outcomes["baseline"].status == "skipped"
    assert "over the cap" in (rows["s1", 1].outcomes["baseline"].message or "")
    assert rows["s1", 2].outcomes["baseline"].status == "ok"


def test_split_keeps_few_files_open_and_filters(tmp_path):
    sessions = []
    for i in range(20):
        s = SessionScript(f"s{i:02d}", start=1_700_000_000.0 + i)
        for j in range(5):
            s.simple(f"SELECT {j}", start=1_700_000_000.0 + i + j * 0.1)
        s.simple("SELECT name FROM items", start=1_700_000_000.0 + i + 0.9)
        sessions.append(s)
    capture = write_capture(tmp_path / "capture", sessions)
    work = tmp_path / "split"
    work.mkdir()
    split = split_capture(capture, work, max_open=3)
    assert (split.statements, len(split.sessions)) == (120, 20)
    assert split.databases == {"app"}
    first = split.sessions[0].path
    assert read_session(first).id == "s00"
    assert [s.seq for s in read_statements(first)] == [1, 2, 3, 4, 5, 6]

    (tmp_path / "window").mkdir()
    window = split_capture(
        capture,
        tmp_path / "window",
        selection=Selection(since=1_700_000_005.0, until=1_700_000_009.5),
    )
    assert len(window.sessions) == 5
    (tmp_path / "class").mkdir()
    one_class = split_capture(
        capture,
        tmp_path / "class",
        selection=Selection(classes=frozenset({fingerprint("SELECT name FROM items")})),
    )
    assert (one_class.statements, len(one_class.sessions)) == (20, 20)


def test_handles_are_bounded(tmp_path):
    handles = _Handles(2)
    paths = [tmp_path / f"f{i}" for i in range(5)]
    for _ in range(3):
        for path in paths:
            handles.get(path).write(b"x\n")
            assert len(handles._open) <= 2
    handles.close_all()
    assert all(p.read_text() == "x\n" * 3 for p in paths)


def test_speed_replays_at_captured_pace(tmp_path, targets):
    s = SessionScript("s1")
    s.simple("SELECT 1", start=1_700_000_000.0)
    s.simple("SELECT 2", start=1_700_000_001.0)
    started = time.perf_counter()
    rows = run(tmp_path, targets, [s], speed=4.0)
    assert 0.25 <= time.perf_counter() - started < 2
    assert rows["s1", 2].outcomes["candidate"].status == "ok"
    fast = time.perf_counter()
    run(tmp_path / "again", targets, [s])
    assert time.perf_counter() - fast < 0.25 + 0.5


def test_worker_processes_share_the_sessions_and_write_one_outcome_file(tmp_path, targets):
    sessions = []
    for i in range(6):
        s = SessionScript(f"s{i}", start=1_700_000_000.0 + i * 0.001)
        s.simple("BEGIN", tx_status="T")
        s.simple(f"UPDATE items SET qty = qty + {i} WHERE id = 1", tx_status="T")
        s.simple("COMMIT")
        s.simple("SELECT count(*) FROM items")
        sessions.append(s)
    rows = run(tmp_path, targets, sessions, jobs=4, processes=2)
    assert len(rows) == 6 * 4
    assert all(o.status == "ok" for r in rows.values() for o in r.outcomes.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["outcomes.jsonl"]
    lines = (tmp_path / "out" / "outcomes.jsonl").read_text().splitlines()
    by_session: dict[str, list[int]] = {}
    for line in lines:
        row = json.loads(line)
        by_session.setdefault(row["session"], []).append(row["seq"])
    assert all(seqs == [1, 2, 3, 4] for seqs in by_session.values())  # each in its order


def test_merge_parts_keeps_complete_rows_only(tmp_path):
    part_path(tmp_path, 0).write_text('{"seq":1}\n{"seq":2}\n')
    part_path(tmp_path, 1).write_text('{"seq":3}\n{"se')  # its worker died mid-row
    merge_parts(tmp_path, 3)
    assert (tmp_path / "outcomes.jsonl").read_text() == '{"seq":1}\n{"seq":2}\n{"seq":3}\n'
    assert not list(tmp_path.glob("outcomes.part-*"))


def test_classified_as_written_equals_classified_from_the_file(tmp_path, targets, engine_mode):
    """Workers fold their rows as they write them (in parallel); the findings must be
    those of reading outcomes.jsonl back."""
    from replay.compare import Accumulator, Thresholds, classify, findings_of

    with psycopg.connect(targets[1].conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE items DROP COLUMN qty")
    sessions = []
    for n in range(6):
        s = SessionScript(f"s{n}", application_name=f"app{n % 2}")
        for i in range(40):
            s.simple("BEGIN", tx_status="T")
            s.simple(f"SELECT qty FROM items WHERE id = {i % 2 + 1}", tx_status="T")
            s.simple("SELECT name FROM items ORDER BY id", tx_status="T")
            s.simple("COMMIT")
            s.extended("SELECT name FROM items WHERE id = $1", [b"%d" % (i % 2 + 1)], types=[INT4])
        sessions.append(s)
    capture = write_capture(tmp_path / "capture", sessions)
    (tmp_path / "split").mkdir()
    split = split_capture(capture, tmp_path / "split")
    options = EngineOptions(jobs=6, processes=2, **_mode)  # type: ignore[arg-type]
    judge = functools.partial(Accumulator, Thresholds(), 3)
    counts = replay(split, targets, tmp_path / "out", options, sink=judge)
    assert counts.sink is not None
    folded, read = findings_of(counts.sink), classify(tmp_path / "out")
    assert folded.statements == read.statements == 6 * 40 * 5
    assert folded.cascaded == read.cascaded > 0
    assert [c.to_json() for c in folded.classes] == [c.to_json() for c in read.classes]
    assert {c.verdict for c in read.classes} >= {"fails", "ok"}


class _CountingSink:
    """A row sink that counts; made in the worker named ``dies_in``, it kills it."""

    def __init__(self, dies_in: str = "") -> None:
        if multiprocessing.current_process().name == dies_in:
            os._exit(3)  # the worker dies before it could hand its sink over
        self.rows = 0

    def add_rows(self, rows: list, origin: Path | str) -> None:
        self.rows += len(rows)

    def merge(self, other: _CountingSink) -> None:
        self.rows += other.rows


@pytest.mark.parametrize("dies_in", ["", "replay-worker-1"])
def test_the_workers_row_sinks_are_merged_or_none_when_a_worker_died(tmp_path, targets, dies_in):
    """Each worker hands its rows to a sink of its own; the parent merges them. A worker
    that died leaves no sink (its share is missing): the run then has none, and its
    rows are read from the file instead."""
    sessions = []
    for n in range(4):
        s = SessionScript(f"s{n}")
        for i in range(5):
            s.simple(f"SELECT name FROM items WHERE id = {i % 2 + 1}")
        sessions.append(s)
    (tmp_path / "split").mkdir()
    split = split_capture(write_capture(tmp_path / "capture", sessions), tmp_path / "split")
    options = EngineOptions(jobs=4, processes=2, **_mode)  # type: ignore[arg-type]
    sink = functools.partial(_CountingSink, dies_in)
    counts = replay(split, targets, tmp_path / "out", options, sink=sink)
    assert counts.statements == 20 == len(list(iter_outcomes(tmp_path / "out")))
    if dies_in:
        assert counts.sink is None
        assert counts.failed_sessions == 1
    else:
        assert counts.sink is not None and counts.sink.rows == 20
        assert counts.failed_sessions == 0
