"""Replaying one captured session against every target in lockstep.

Each statement is sent to every target, then every target's answer is collected
(waiting on all their sockets at once), so the targets execute it in parallel and
each answer is timed as it arrives. A session waits only on its own previous
statement, never on a global order, so sessions whose locks production granted in
another order than the capture shows cannot deadlock the replay (lock_timeout is the
safety net).

A target whose connection is lost gets ``lost`` for that statement and ``skipped``
until the captured session was next outside a transaction; there it reconnects and
continues. Errors that only cascade from an earlier failure in the same transaction
(25P02) point at that failure through ``cascade_of``.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from replay.engine.result import IN_FAILED_TRANSACTION, lost_outcome, skipped_outcome
from replay.engine.target import TargetConnection
from replay.fingerprint import fingerprint, has_top_level_order_by
from replay.outcomes import OutcomeRow, TargetOutcome
from replay.records import Session, Statement

Emit = Callable[[OutcomeRow], None]
# The order in which a cascade is attributed when several targets cascade.
CASCADE_PRIORITY = ("candidate", "baseline", "baseline2")
POLL_INTERVAL = 1.0


class Pacer:
    """Sends at captured pace divided by ``speed``; ``speed <= 0`` means no waiting."""

    def __init__(self, speed: float, capture_first: float | None, stop: threading.Event) -> None:
        self.speed = speed
        self.capture_first = capture_first or 0.0
        self.zero = time.monotonic()
        self.stop = stop

    def wait(self, captured: float) -> None:
        if self.speed > 0:
            due = self.zero + (captured - self.capture_first) / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)


def collect(connections: Iterable[TargetConnection], stop: threading.Event) -> None:
    """Poll every connection until each has its answer (or was cancelled, or lost)."""
    pending = [c for c in connections if not c.poll()]
    while pending:
        # Wake on any answer; every pending connection is then polled (poll never blocks).
        with contextlib.suppress(OSError, ValueError):
            select.select([c.socket for c in pending], [], [], POLL_INTERVAL)
        now = time.perf_counter()
        for connection in pending:
            if stop.is_set():
                connection.cancel()
            connection.check_deadline(now)
        pending = [c for c in pending if not c.poll()]


@dataclass
class _Batch:
    """The answers to a multi-statement Query, handed out one per captured statement."""

    text: str
    index: int
    outcomes: dict[str, list[TargetOutcome]] = field(default_factory=dict)


@dataclass
class _TargetState:
    lost_at: int | None = None
    failed_at: int | None = None


class SessionReplay:
    """Replays sessions over a worker's connections (one per target), one at a time."""

    def __init__(
        self,
        connections: dict[str, TargetConnection],
        emit: Emit,
        *,
        stop: threading.Event,
        pacer: Pacer | None = None,
    ) -> None:
        self.connections = connections
        self.emit = emit
        self.stop = stop
        self.pacer = pacer

    def run(self, session: Session, statements: Iterable[Statement]) -> int:
        """Replay one session; the number of statements replayed."""
        states = {name: _TargetState() for name in self.connections}
        for name, connection in self.connections.items():
            if not connection.begin(session):
                states[name].lost_at = -1
        application = session.application_name or session.parameters.get("application_name", "")
        batch: _Batch | None = None
        boundary = True  # the captured session was outside a transaction
        count = 0
        for statement in statements:
            if self.stop.is_set():
                break
            if self.pacer is not None:
                self.pacer.wait(statement.start)
            row = _row(statement, application)
            if not statement.replayable or statement.protocol == "function":
                reason = f"not replayable{': ' + statement.note if statement.note else ''}"
                row.outcomes = {name: skipped_outcome(reason) for name in self.connections}
            elif (
                batch is not None
                and statement.batch == batch.text
                and statement.batch_index > batch.index
            ):
                batch.index = statement.batch_index
                row.outcomes = {
                    name: _nth(outcomes, statement.batch_index)
                    for name, outcomes in batch.outcomes.items()
                }
            else:
                batch = self._execute(statement, session, states, boundary, row)
            self._cascades(statement, states, row)
            self.emit(row)
            boundary = statement.tx_status in ("I", "")
            count += 1
        return count

    def _execute(
        self,
        statement: Statement,
        session: Session,
        states: dict[str, _TargetState],
        boundary: bool,
        row: OutcomeRow,
    ) -> _Batch | None:
        active: dict[str, TargetConnection] = {}
        for name, connection in self.connections.items():
            state = states[name]
            if not connection.connected:
                if not boundary and state.lost_at is not None:
                    row.outcomes[name] = skipped_outcome(
                        f"connection lost at seq {state.lost_at}; resuming at the next transaction"
                    )
                    continue
                if not connection.connect(session):
                    state.lost_at = statement.seq
                    row.outcomes[name] = lost_outcome(connection.error)
                    continue
                state.lost_at = state.failed_at = None
            active[name] = connection
        for connection in active.values():
            connection.start(statement)
        collect(active.values(), self.stop)
        batch = _Batch(statement.batch, statement.batch_index) if statement.batch else None
        for name, connection in active.items():
            outcomes = connection.outcomes
            if batch is not None:
                batch.outcomes[name] = outcomes
            row.outcomes[name] = _nth(outcomes, statement.batch_index if batch else 0)
            if row.outcomes[name].status == "lost":
                states[name].lost_at = statement.seq
        for name in self.connections:
            if batch is not None and name not in batch.outcomes:
                batch.outcomes[name] = []
        return batch

    def _cascades(
        self, statement: Statement, states: dict[str, _TargetState], row: OutcomeRow
    ) -> None:
        for name in sorted(self.connections, key=_priority):
            outcome = row.outcomes.get(name)
            state = states[name]
            connection = self.connections[name]
            if outcome is None:
                continue
            if outcome.sqlstate == IN_FAILED_TRANSACTION:
                if row.cascade_of is None and state.failed_at is not None:
                    row.cascade_of = state.failed_at
            elif (
                outcome.status in ("error", "timeout")
                and state.failed_at is None
                and connection.in_failed_transaction
            ):
                state.failed_at = statement.seq
            if not connection.in_failed_transaction:
                state.failed_at = None


def _priority(name: str) -> int:
    return CASCADE_PRIORITY.index(name) if name in CASCADE_PRIORITY else len(CASCADE_PRIORITY)


def _nth(outcomes: list[TargetOutcome], index: int) -> TargetOutcome:
    if index < len(outcomes):
        return outcomes[index]
    if outcomes and outcomes[-1].status == "lost":
        return skipped_outcome("connection lost earlier in its Query")
    if not outcomes:
        return skipped_outcome("no answer")
    return skipped_outcome("not executed: an earlier statement of its Query failed")


def _row(statement: Statement, application: str) -> OutcomeRow:
    return OutcomeRow(
        session=statement.session,
        seq=statement.seq,
        start=statement.start,
        fingerprint=fingerprint(statement.sql),
        sql=statement.sql,
        params=list(statement.params),
        protocol=statement.protocol,
        application_name=application,
        ordered=has_top_level_order_by(statement.sql),
        captured_sqlstate=statement.error.sqlstate if statement.error else None,
    )
