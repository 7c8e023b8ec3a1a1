"""Replaying one captured session against every target, driven by an event loop.

Each target gets the session's statements in captured order on its own connection
(a :class:`~replay.engine.lane.Lane`); the lanes advance independently, at most
``window`` statements apart, so the targets run in parallel and each answer is timed
when it arrives. A session waits only on its own previous statement, never on a global
order or on another target, so sessions whose locks production granted in another
order than the capture shows cannot deadlock the replay (lock_timeout is the safety
net). A row is written once every target answered.

:class:`SessionRun` never blocks on an answer: :meth:`SessionRun.advance` sends what
can be sent, :meth:`SessionRun.answer` takes the answers that arrived when the event loop
(:mod:`replay.engine.loop`) saw its lane's socket readable.

Durations: a statement is timed only when it was alone in flight on its connection
(:mod:`replay.engine.responses`). With pipelining, :class:`Timing` picks which
statements go alone: every statement of a query class until the class has
``FIRST_TIMED`` timings in this worker, then one in ``TIME_EVERY``, the same
statements on every target. The others have no duration (None), and the
comparison's latencies are those of the timed ones.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from replay.engine.encode import Wire, wire
from replay.engine.lane import Lane
from replay.engine.responses import Answer
from replay.engine.result import keep_samples_where_rows_differ
from replay.model.outcomes import OutcomeRow, TargetOutcome
from replay.model.records import Session, Statement
from replay.sql.fingerprint import fingerprint, has_top_level_order_by

Emit = Callable[[OutcomeRow], None]
# The order in which a cascade is attributed when several targets cascade.
CASCADE_PRIORITY = ("candidate", "baseline", "baseline2")
WINDOW = 1000
FIRST_TIMED = 32
TIME_EVERY = 128


class Timing:
    """Which statements are sent alone to be timed, by query class (one per worker)."""

    def __init__(self, first: int = FIRST_TIMED, every: int = TIME_EVERY) -> None:
        self.first = first
        self.every = every  # 0: none after the first
        self._seen: dict[str, int] = {}

    def wants(self, query_class: str) -> bool:
        seen = self._seen.get(query_class, 0)
        if len(self._seen) >= 65536:
            self._seen.clear()
        self._seen[query_class] = seen + 1
        return seen < self.first or (self.every > 0 and seen % self.every == 0)


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


@dataclass(slots=True)
class _Entry:
    statement: Statement
    row: OutcomeRow
    timed: bool = True
    wire: Wire | None = None  # its request's bytes, the same for every target
    outcomes: dict[str, TargetOutcome] = field(default_factory=dict)
    cascades: dict[str, int | None] = field(default_factory=dict)


class SessionRun:
    """One session being replayed over one connection per target (its lanes)."""

    def __init__(
        self,
        lanes: list[Lane],
        session: Session,
        statements: Iterator[Statement],
        emit: Emit,
        *,
        pacer: Pacer | None = None,
        window: int = WINDOW,
        timing: Timing | None = None,
    ) -> None:
        self.lanes = lanes
        self.session = session
        self.emit = emit
        self.pacer = pacer
        self.window = window
        self.timing = timing
        self.written = 0
        self._application = session.application_name or session.parameters.get(
            "application_name", ""
        )
        self._stream = statements
        self._upcoming: Statement | None = next(statements, None)
        self._entries: deque[_Entry] = deque()
        self._base = 0
        for lane in lanes:
            lane.begin(session)

    @property
    def finished(self) -> bool:
        return self._upcoming is None and not self._entries

    def advance(self) -> float:
        """Send on every idle lane that can go and write the rows every target answered;
        the seconds until a paced statement is due (``inf``: nothing to wait for)."""
        entries = self._entries
        wait = math.inf
        progressed = True
        while progressed:
            progressed = False
            for lane in self.lanes:
                while True:
                    index = lane.sent - self._base
                    if index == len(entries):
                        upcoming = self._upcoming
                        if upcoming is None or len(entries) >= self.window:
                            break
                        due = self.pacer.delay(upcoming.start) if self.pacer else 0.0
                        if due > 0:
                            wait = min(wait, due)
                            break
                        entries.append(self._entry(upcoming))
                        self._upcoming = next(self._stream, None)
                    entry = entries[index]
                    if not lane.may_send(entry.statement, entry.timed, entry.wire):
                        break
                    outcome = lane.start(entry.statement, self.session, entry.timed, entry.wire)
                    if outcome is not None:
                        self._record(lane, entry, outcome)
                        progressed = True
                connection = lane.connection
                connection.flush()
                if connection.ready:
                    progressed = self._take(lane, connection.poll()) or progressed
        lanes = len(self.lanes)
        while entries and len(entries[0].outcomes) == lanes:
            self.emit(_finish(entries.popleft()))
            self._base += 1
            self.written += 1
        return wait

    def _entry(self, statement: Statement) -> _Entry:
        row = _row(statement, self._application)
        if self.timing is None:  # one at a time, through libpq
            return _Entry(statement, row)
        shared = wire(statement) if statement.replayable else None
        return _Entry(statement, row, self.timing.wants(row.fingerprint), shared)

    def answer(self, lane: Lane, now: float | None = None) -> bool:
        """Read what ``lane`` has received (and enforce its watchdog when ``now`` is
        given); True if it completed any answer."""
        connection = lane.connection
        if now is not None:
            connection.check_deadline(now)
        return self._take(lane, connection.poll())

    def _take(self, lane: Lane, answers: list[Answer]) -> bool:
        """Settle ``lane``'s oldest statements in flight with ``answers``; after a lost
        connection, the statements sent behind the lost one go again (or are skipped)."""
        for answer in answers:
            entry = self._entries[lane.position - self._base]
            outcome = lane.finish(entry.statement, answer)
            self._record(lane, entry, outcome, answer.tx_status)
        if lane.sent > lane.position and not lane.connection.in_flight:
            lane.sent = lane.position  # never answered: the connection was lost
            lane.exclusive = False
        return bool(answers)

    def _record(
        self, lane: Lane, entry: _Entry, outcome: TargetOutcome, tx_status: str | None = None
    ) -> None:
        entry.outcomes[lane.name] = outcome
        entry.cascades[lane.name] = lane.settle(entry.statement, outcome, tx_status)

    def abandon(self) -> None:
        """The run is stopping: cancel what is running and drop those connections."""
        for lane in self.lanes:
            if lane.busy:
                lane.connection.cancel()
                lane.connection.close()
                lane.sent = lane.position


def _priority(name: str) -> int:
    return CASCADE_PRIORITY.index(name) if name in CASCADE_PRIORITY else len(CASCADE_PRIORITY)


@lru_cache(maxsize=64)
def _in_priority(names: tuple[str, ...]) -> tuple[str, ...]:
    """Target names in CASCADE_PRIORITY order (asked for every row: cached)."""
    return tuple(sorted(names, key=_priority))


def _finish(entry: _Entry) -> OutcomeRow:
    row = entry.row
    names = _in_priority(tuple(entry.outcomes))
    outcomes, cascades = entry.outcomes, entry.cascades
    row.outcomes = {name: outcomes[name] for name in names}
    keep_samples_where_rows_differ(row.outcomes)
    for name in names:
        if cascades.get(name) is not None:
            row.cascade_of = cascades[name]
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
    formats = statement.param_formats
    binary = bool(formats) and any(formats)
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
        param_types=statement.param_types if binary else None,
        param_formats=formats if binary else None,
    )
