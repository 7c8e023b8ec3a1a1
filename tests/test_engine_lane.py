"""One target's lane (:class:`replay.engine.lane.Lane`) as a pure unit, over a fake
connection: what may be sent when, what is not sent, a lost connection, cascades."""

from __future__ import annotations

from engine_fakes import SESSION, FakeConnection, selects, statement

from replay.engine.lane import Lane
from replay.engine.result import IN_FAILED_TRANSACTION


def _lane(**fake: object) -> tuple[Lane, FakeConnection]:
    connection = FakeConnection(**fake)  # type: ignore[arg-type]
    lane = Lane("candidate", connection)  # type: ignore[arg-type]
    lane.begin(SESSION)
    return lane, connection


def _send_what_may_go(lane: Lane, statements: list, timed: bool = False) -> int:
    """Send statements in order while the lane lets them go; how many went."""
    went = 0
    for item in statements[lane.sent :]:
        if not lane.may_send(item, timed):
            break
        assert lane.start(item, SESSION, timed) is None
        went += 1
    return went


def _settle_answers(lane: Lane, statements: list) -> None:
    for answer in lane.connection.poll():
        item = statements[lane.position]
        lane.settle(item, lane.finish(item, answer), answer.tx_status)


def test_begin_connects_and_a_refused_begin_marks_the_session_lost_from_its_start():
    lane, connection = _lane()
    assert connection.connected and lane.lost_at is None and not lane.busy
    refused, _ = _lane(refuse=1)
    assert refused.lost_at == 0


def test_a_pipelined_lane_fills_its_depth_then_refills_once_half_is_answered():
    statements = selects(20)
    lane, connection = _lane(depth=4)
    assert _send_what_may_go(lane, statements) == 4
    assert connection.in_flight == 4 and lane.busy
    connection.arrive(1)
    _settle_answers(lane, statements)
    # Three in flight: not yet half empty, so nothing goes (fewer, larger writes).
    assert _send_what_may_go(lane, statements) == 0
    connection.arrive(1)
    _settle_answers(lane, statements)
    assert _send_what_may_go(lane, statements) == 2
    assert connection.most_in_flight == 4
    assert [seq for seq, _ in connection.sent] == [1, 2, 3, 4, 5, 6]  # captured order


def test_a_timed_statement_goes_alone_and_nothing_goes_behind_it():
    statements = selects(3)
    lane, connection = _lane(depth=8)
    assert lane.may_send(statements[0], timed=False)
    lane.start(statements[0], SESSION, timed=False)
    assert not lane.may_send(statements[1], timed=True)  # waits for the one in flight
    connection.arrive()
    _settle_answers(lane, statements)
    assert lane.may_send(statements[1], timed=True)
    lane.start(statements[1], SESSION, timed=True)
    assert not lane.may_send(statements[2], timed=False)  # nothing behind a timed one
    assert connection.sent == [(1, False), (2, True)]


def test_an_exclusive_request_waits_for_the_ones_in_flight():
    copy = statement(2, "COPY items FROM STDIN")
    statements = [statement(1), copy, statement(3)]
    lane, connection = _lane(depth=8, exclusive_sql=frozenset({copy.sql}))
    assert _send_what_may_go(lane, statements) == 1
    connection.arrive()
    _settle_answers(lane, statements)
    assert _send_what_may_go(lane, statements) == 1  # the COPY, alone
    assert lane.exclusive
    assert not lane.may_send(statements[2], timed=False)


def test_a_statement_that_cannot_be_replayed_is_skipped_without_being_sent():
    lane, connection = _lane()
    unreplayable = statement(1, "SELECT 1", replayable=False, note="COPY data not captured")
    outcome = lane.start(unreplayable, SESSION)
    assert outcome is not None and outcome.status == "skipped"
    assert "COPY data not captured" in (outcome.message or "")
    assert connection.sent == []


def test_the_later_statements_of_a_query_take_their_answers_from_its_one_answer():
    batch = "SELECT 1; SELECT fail; SELECT 3"
    statements = [
        statement(1, "SELECT 1", batch=batch, batch_index=0),
        statement(2, "SELECT fail", batch=batch, batch_index=1),
        statement(3, "SELECT 3", batch=batch, batch_index=2),
    ]
    lane, connection = _lane(depth=8)
    assert lane.may_send(statements[0], timed=False)
    assert lane.start(statements[0], SESSION, timed=False) is None
    assert not lane.may_send(statements[1], timed=False)  # needs the Query's answer
    connection.arrive()
    _settle_answers(lane, statements)
    outcomes = []
    for item in statements[1:]:
        assert lane.may_send(item, timed=False)
        outcome = lane.start(item, SESSION, timed=False)
        assert outcome is not None
        lane.settle(item, outcome)
        outcomes.append(outcome)
    assert [seq for seq, _ in connection.sent] == [1]  # the Query went once
    assert [o.status for o in outcomes] == ["error", "ok"]
    assert outcomes[0].sqlstate == "42703"


def test_a_lost_connection_skips_the_rest_of_its_transaction_then_reconnects():
    statements = [
        statement(1, "BEGIN", tx="T"),
        statement(2, "UPDATE items SET qty = 1", tx="T"),
        statement(3, "SELECT 2", tx="T"),
        statement(4, "COMMIT", tx="I"),
        statement(5, "SELECT 5", tx="I"),
    ]
    lane, connection = _lane()
    lane.start(statements[0], SESSION)
    connection.arrive()
    _settle_answers(lane, statements)
    lane.start(statements[1], SESSION)
    connection.lose()
    _settle_answers(lane, statements)
    assert lane.lost_at == 2 and not connection.connected
    outcomes = {}
    for item in statements[2:4]:
        outcome = lane.start(item, SESSION)
        assert outcome is not None, f"seq {item.seq} was sent on a lost transaction"
        lane.settle(item, outcome)
        outcomes[item.seq] = outcome
    assert {o.status for o in outcomes.values()} == {"skipped"}
    assert "connection lost at seq 2" in (outcomes[3].message or "")
    # The captured session is outside a transaction again: reconnect and go on.
    assert lane.start(statements[4], SESSION) is None
    assert connection.connects == 2 and lane.lost_at is None
    assert [seq for seq, _ in connection.sent] == [1, 2, 5]


def test_a_failed_reconnection_is_a_lost_outcome_with_the_connection_error():
    lane, connection = _lane()
    connection.lose()
    connection.refuse = 1
    outcome = lane.start(statement(7), SESSION)
    assert outcome is not None and outcome.status == "lost"
    assert outcome.message == "connection refused"
    assert lane.lost_at == 7


def test_errors_that_only_cascade_point_at_the_first_failure_of_the_transaction():
    statements = [
        statement(1, "BEGIN", tx="T"),
        statement(2, "SELECT fail", tx="E"),
        statement(3, "SELECT 3", tx="E"),
        statement(4, "COMMIT", tx="I"),
        statement(5, "SELECT fail", tx="I"),
        statement(6, "SELECT 6", tx="I"),
    ]
    lane, connection = _lane()
    cascades, outcomes = [], []
    for item in statements:
        lane.start(item, SESSION)
        connection.arrive()
        (answer,) = connection.poll()
        outcome = lane.finish(item, answer)
        cascades.append(lane.settle(item, outcome, answer.tx_status))
        outcomes.append(outcome)
    assert outcomes[2].sqlstate == IN_FAILED_TRANSACTION
    assert outcomes[3].tag == "ROLLBACK"
    # 25P02 and the COMMIT answered ROLLBACK cascade from seq 2; nothing else does (an
    # error outside a transaction fails no later statement).
    assert cascades == [None, None, 2, 2, None, None]
    assert lane.failed_at is None
