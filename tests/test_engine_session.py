"""One session's replay (:class:`replay.engine.session.SessionRun`), its pacing
(:class:`~replay.engine.session.Pacer`) and which statements are timed
(:class:`~replay.engine.session.Timing`), as pure units over fake connections."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from engine_fakes import SESSION, FakeConnection, drive, selects, statement

from replay.engine import session as session_module
from replay.engine.lane import Lane
from replay.engine.session import Pacer, SessionRun, Timing
from replay.model.outcomes import OutcomeRow

NEVER_TIMED = (0, 0)  # Timing(first, every): no statement goes alone to be timed


def _run(
    statements: list,
    *,
    depth: int = 1,
    timing: tuple[int, int] | None = None,
    candidate: FakeConnection | None = None,
    **options: object,
) -> tuple[SessionRun, list[OutcomeRow], FakeConnection, FakeConnection]:
    baseline = FakeConnection(depth=depth)
    candidate = candidate or FakeConnection(depth=depth)
    lanes = [Lane("baseline", baseline), Lane("candidate", candidate)]  # type: ignore[arg-type]
    rows: list[OutcomeRow] = []
    run = SessionRun(
        lanes,
        SESSION,
        iter(statements),
        rows.append,
        timing=Timing(*timing) if timing is not None else None,
        **options,  # type: ignore[arg-type]
    )
    return run, rows, baseline, candidate


def test_every_target_gets_the_statements_in_captured_order_and_rows_come_in_order():
    statements = selects(5)
    run, rows, baseline, candidate = _run(statements)
    drive(run)
    assert run.finished and run.written == 5
    assert (
        [seq for seq, _ in baseline.sent] == [seq for seq, _ in candidate.sent] == [1, 2, 3, 4, 5]
    )
    assert [row.seq for row in rows] == [1, 2, 3, 4, 5]
    for row in rows:
        assert list(row.outcomes) == ["candidate", "baseline"]  # CASCADE_PRIORITY order
        assert {o.status for o in row.outcomes.values()} == {"ok"}
    assert rows[0].application_name == "web"
    assert rows[0].fingerprint == rows[4].fingerprint  # one query class


def test_a_target_runs_ahead_of_a_slow_one_up_to_the_window_and_rows_wait_for_both():
    statements = selects(10)
    run, rows, baseline, candidate = _run(statements, window=3)
    run.advance()
    for _ in range(10):  # only the baseline answers
        baseline.arrive()
        run.answer(run.lanes[0])
        run.advance()
    assert [seq for seq, _ in baseline.sent] == [1, 2, 3]  # the window, not further
    assert [seq for seq, _ in candidate.sent] == [1]
    assert rows == []  # a row is written once every target answered
    drive(run)
    assert [row.seq for row in rows] == list(range(1, 11))


def test_without_timing_every_statement_is_alone_in_flight_and_timed():
    run, _rows, baseline, _ = _run(selects(6), depth=8)
    drive(run)
    assert baseline.most_in_flight == 1
    assert all(timed for _, timed in baseline.sent)


def test_pipelined_statements_stay_within_the_connections_depth():
    run, rows, baseline, candidate = _run(selects(40), depth=4, timing=NEVER_TIMED)
    run.advance()
    assert baseline.in_flight == candidate.in_flight == 4
    drive(run)
    assert baseline.most_in_flight == candidate.most_in_flight == 4
    assert [seq for seq, _ in candidate.sent] == list(range(1, 41))
    assert not any(timed for _, timed in candidate.sent)
    assert [row.seq for row in rows] == list(range(1, 41))


def test_a_statement_picked_for_timing_is_sent_alone_on_every_target():
    # Timing(first=1, every=0): the first statement of the class is timed, no other.
    run, _rows, baseline, candidate = _run(selects(6), depth=8, timing=(1, 0))
    run.advance()
    assert baseline.in_flight == candidate.in_flight == 1
    drive(run)
    for connection in (baseline, candidate):
        assert connection.sent[0] == (1, True)
        assert not any(timed for _, timed in connection.sent[1:])


def test_a_connection_lost_mid_transaction_skips_it_on_that_target_only_then_reconnects():
    statements = [
        statement(1, "BEGIN", tx="T"),
        statement(2, "UPDATE items SET qty = 1", tx="T"),
        statement(3, "SELECT 3", tx="T"),
        statement(4, "SELECT 4", tx="T"),
        statement(5, "COMMIT", tx="I"),
        statement(6, "SELECT 6", tx="I"),
    ]
    run, rows, _baseline, candidate = _run(statements, depth=4, timing=NEVER_TIMED)
    run.advance()
    assert candidate.in_flight == 4
    candidate.arrive(1)  # BEGIN is answered, then the connection breaks
    candidate.lose()
    run.answer(run.lanes[1])
    drive(run)
    assert [row.seq for row in rows] == [1, 2, 3, 4, 5, 6]
    on_candidate = [row.outcomes["candidate"].status for row in rows]
    assert on_candidate == ["ok", "lost", "skipped", "skipped", "skipped", "ok"]
    assert {row.outcomes["baseline"].status for row in rows} == {"ok"}
    # Sent: the first four pipelined, then (after reconnecting) only seq 6.
    assert [seq for seq, _ in candidate.sent] == [1, 2, 3, 4, 6]
    assert candidate.connects == 2


def test_a_cascading_error_row_points_at_the_first_failure_of_its_transaction():
    statements = [
        statement(1, "BEGIN", tx="T"),
        statement(2, "SELECT qty FROM items", tx="T"),
        statement(3, "SELECT name FROM items", tx="T"),
        statement(4, "COMMIT", tx="I"),
    ]
    broken = FakeConnection(failing="qty")  # the candidate dropped the column
    run, rows, _, _ = _run(statements, candidate=broken)
    drive(run)
    assert [row.outcomes["candidate"].status for row in rows] == ["ok", "error", "error", "ok"]
    assert [row.cascade_of for row in rows] == [None, None, 2, 2]


def test_answer_enforces_the_watchdog_only_when_given_the_time():
    run, _rows, baseline, _ = _run(selects(2))
    run.advance()
    run.answer(run.lanes[0])
    run.answer(run.lanes[0], now=12.5)
    assert baseline.deadline_checks == [12.5]


def test_abandon_cancels_and_drops_only_the_busy_connections():
    run, _rows, baseline, candidate = _run(selects(3))
    run.advance()
    baseline.arrive()
    run.answer(run.lanes[0])  # the baseline is idle, the candidate still running
    run.abandon()
    assert (candidate.cancels, candidate.closes, candidate.connected) == (1, 1, False)
    assert (baseline.cancels, baseline.closes, baseline.connected) == (0, 0, True)
    assert not run.lanes[1].busy


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(session_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def test_the_pacer_keeps_the_captured_pace_divided_by_speed(clock):
    pacer = Pacer(2.0, capture_first=100.0)
    assert pacer.delay(110.0) == 5.0  # ten captured seconds at twice the speed
    clock.now += 4.0
    assert pacer.delay(110.0) == 1.0
    assert pacer.delay(104.0) == -2.0  # late: send now
    assert Pacer(0.0, 100.0).delay(110.0) == 0.0  # as fast as possible


def test_a_paced_session_sends_nothing_before_it_is_due(clock):
    statements = selects(2)  # captured at 101 and 102, the session at 100
    run, rows, baseline, _ = _run(statements, pacer=Pacer(2.0, capture_first=100.0))
    assert run.advance() == 0.5
    assert baseline.sent == []
    clock.now += 0.5
    assert run.advance() == 0.5  # the first went; the second is due half a second later
    assert [seq for seq, _ in baseline.sent] == [1]
    baseline.arrive()
    run.answer(run.lanes[0])
    assert run.advance() == 0.5
    assert [seq for seq, _ in baseline.sent] == [1]
    clock.now += 0.5
    drive(run)
    assert [row.seq for row in rows] == [1, 2]


def test_timing_picks_the_first_statements_of_each_class_then_one_in_every():
    timing = Timing(first=2, every=3)
    picked = [timing.wants("a") for _ in range(8)]
    assert picked == [True, True, False, True, False, False, True, False]
    assert timing.wants("b")  # each class counts on its own
    never = Timing(first=1, every=0)
    assert [never.wants("a") for _ in range(4)] == [True, False, False, False]
