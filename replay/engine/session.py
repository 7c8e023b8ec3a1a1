"""Replaying one captured session against every target.

Each target gets the session's statements in captured order on its own connection
(a :class:`~replay.engine.lane.Lane`); the lanes advance independently, at most
``window`` statements apart, waiting on all their sockets at once, so the targets run
in parallel and each answer is timed when it arrives. A session waits only on its own
previous statement, never on a global order or on another target, so sessions whose
locks production granted in another order than the capture shows cannot deadlock the
replay (lock_timeout is the safety net). A row is written once every target answered.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from replay.engine.lane import Lane
from replay.engine.result import keep_samples_where_rows_differ
from replay.engine.target import TargetConnection
from replay.fingerprint import fingerprint, has_top_level_order_by
from replay.outcomes import OutcomeRow, TargetOutcome
from replay.records import Session, Statement

Emit = Callable[[OutcomeRow], None]
# The order in which a cascade is attributed when several targets cascade.
CASCADE_PRIORITY = ("candidate", "baseline", "baseline2")
POLL_INTERVAL = 1.0
WINDOW = 1000


class Pacer:
    """Sends at captured pace divided by ``speed``; ``speed <= 0`` means no waiting."""

    def __init__(self, speed: float, capture_first: float | None) -> None:
        self.speed = speed
        self.capture_first = capture_first or 0.0
        self.zero = time.monotonic()

    def delay(self, captured: float) -> float:
        """Seconds until a statement captured at ``captured`` is due (<= 0: now)."""
        if self.speed <= 0:
            return 0.0
        return self.zero + (captured - self.capture_first) / self.speed - time.monotonic()


@dataclass
class _Entry:
    statement: Statement
    row: OutcomeRow
    outcomes: dict[str, TargetOutcome] = field(default_factory=dict)
    cascades: dict[str, int | None] = field(default_factory=dict)


class SessionReplay:
    """Replays sessions over a worker's connections (one per target), one at a time."""

    def __init__(
        self,
        connections: dict[str, TargetConnection],
        emit: Emit,
        *,
        stop: threading.Event,
        pacer: Pacer | None = None,
        window: int = WINDOW,
    ) -> None:
        self.lanes = [Lane(name, c) for name, c in connections.items()]
        self.emit = emit
        self.stop = stop
        self.pacer = pacer
        self.window = window

    def run(self, session: Session, statements: Iterable[Statement]) -> int:
        """Replay one session; the number of statements written."""
        for lane in self.lanes:
            lane.begin(session)
        application = session.application_name or session.parameters.get("application_name", "")
        stream: Iterator[Statement] = iter(statements)
        upcoming: Statement | None = next(stream, None)
        entries: deque[_Entry] = deque()
        base = written = 0
        while upcoming is not None or entries:
            if self.stop.is_set():
                self._abandon()
                break
            wait = POLL_INTERVAL
            progressed = True
            while progressed:
                progressed = False
                for lane in self.lanes:
                    if lane.busy:
                        continue
                    index = lane.position - base
                    if index == len(entries):
                        if upcoming is None or len(entries) >= self.window:
                            continue
                        due = self.pacer.delay(upcoming.start) if self.pacer else 0.0
                        if due > 0:
                            wait = min(wait, due)
                            continue
                        entries.append(_Entry(upcoming, _row(upcoming, application)))
                        upcoming = next(stream, None)
                    entry = entries[index]
                    outcome = lane.start(entry.statement, session)
                    if outcome is not None:
                        self._record(lane, entry, outcome)
                        progressed = True
            while entries and len(entries[0].outcomes) == len(self.lanes):
                self.emit(_finish(entries.popleft()))
                base += 1
                written += 1
            busy = [lane for lane in self.lanes if lane.busy]
            if busy:
                self._wait(busy, wait, entries, base)
            elif wait < POLL_INTERVAL:
                self.stop.wait(wait)
        return written

    def _record(self, lane: Lane, entry: _Entry, outcome: TargetOutcome) -> None:
        entry.outcomes[lane.name] = outcome
        entry.cascades[lane.name] = lane.settle(entry.statement, outcome)

    def _wait(self, busy: list[Lane], timeout: float, entries: deque[_Entry], base: int) -> None:
        # Wake on any answer; every busy lane is then polled (poll never blocks).
        with contextlib.suppress(OSError, ValueError):
            select.select([lane.connection.socket for lane in busy], [], [], timeout)
        now = time.perf_counter()
        for lane in busy:
            lane.connection.check_deadline(now)
            if lane.connection.poll():
                entry = entries[lane.position - base]
                self._record(lane, entry, lane.finish(entry.statement))

    def _abandon(self) -> None:
        """The run is stopping: cancel what is running and drop those connections."""
        for lane in self.lanes:
            if lane.busy:
                lane.connection.cancel()
                lane.connection.close()
                lane.busy = False


def _priority(name: str) -> int:
    return CASCADE_PRIORITY.index(name) if name in CASCADE_PRIORITY else len(CASCADE_PRIORITY)


def _finish(entry: _Entry) -> OutcomeRow:
    row = entry.row
    row.outcomes = {name: entry.outcomes[name] for name in sorted(entry.outcomes, key=_priority)}
    keep_samples_where_rows_differ(row.outcomes)
    for name in sorted(entry.cascades, key=_priority):
        if entry.cascades[name] is not None:
            row.cascade_of = entry.cascades[name]
            break
    return row


# Whether a query class has a top-level ORDER BY, by fingerprint: the fingerprint is of
# the parse tree without its constants, so it decides the question for the whole class,
# and SQL with inlined literals (the simple protocol) would otherwise be parsed into
# Python objects once per statement, which costs more than replaying it.
_ORDERED: dict[str, bool] = {}
_ORDERED_LIMIT = 65536


def _ordered(sql: str, query_class: str) -> bool:
    if query_class.startswith("x"):  # no parse tree behind it: ask about this text
        return has_top_level_order_by(sql)
    ordered = _ORDERED.get(query_class)
    if ordered is None:
        if len(_ORDERED) >= _ORDERED_LIMIT:
            _ORDERED.clear()
        ordered = _ORDERED[query_class] = has_top_level_order_by(sql)
    return ordered


def _row(statement: Statement, application: str) -> OutcomeRow:
    sql = statement.sql
    query_class = fingerprint(sql)
    return OutcomeRow(
        session=statement.session,
        seq=statement.seq,
        start=statement.start,
        fingerprint=query_class,
        sql=sql,
        params=list(statement.params),
        protocol=statement.protocol,
        application_name=application,
        ordered=_ordered(sql, query_class),
        captured_sqlstate=statement.error.sqlstate if statement.error else None,
    )
