"""A fake replay connection and a tiny scripted server, for unit tests of the engine's
lane and session (:mod:`replay.engine.lane`, :mod:`replay.engine.session`) without
PostgreSQL.

:class:`FakeConnection` offers what a lane calls on a replay connection (the interface
:class:`~replay.engine.target.TargetConnection` and
:class:`~replay.engine.pipeline.PipelinedConnection` share). Requests wait in flight
until the test lets their answers :meth:`~FakeConnection.arrive`; the answers follow
what a server would do with the transaction status (an error inside a transaction
fails it, statements then get 25P02, a COMMIT of it gets ROLLBACK).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from replay.engine.encode import Wire
from replay.engine.responses import Answer
from replay.engine.result import IN_FAILED_TRANSACTION, lost_outcome
from replay.engine.session import SessionRun
from replay.model.outcomes import TargetOutcome
from replay.model.records import Session, Statement

SESSION = Session(id="s1", start=100.0, user="app", database="shop", application_name="web")


def statement(seq: int, sql: str = "SELECT 1", tx: str = "I", **fields: object) -> Statement:
    """A captured simple-protocol statement; ``tx``: the status production was in after."""
    return Statement(session="s1", seq=seq, start=100.0 + seq, sql=sql, tx_status=tx, **fields)  # type: ignore[arg-type]


def selects(count: int) -> list[Statement]:
    return [statement(seq, f"SELECT {seq}") for seq in range(1, count + 1)]


@dataclass
class FakeConnection:
    """A replay connection to a scripted server; ``depth``: statements it may have in
    flight; ``refuse``: how many connection attempts fail; ``failing``: the SQL that
    errors on this server holds it."""

    depth: int = 1
    refuse: int = 0
    failing: str = "fail"
    exclusive_sql: frozenset[str] = frozenset()
    connected: bool = False
    error: str = ""
    tx_status: str = ""
    wants_write: bool = False
    socket: int = -1
    sent: list[tuple[int, bool]] = field(default_factory=list)  # (seq, timed), in order
    connects: int = 0
    cancels: int = 0
    closes: int = 0
    deadline_checks: list[float] = field(default_factory=list)
    most_in_flight: int = 0
    _flying: deque[Statement] = field(default_factory=deque)
    _answered: list[Answer] = field(default_factory=list)  # arrived, in order

    # --- what a lane calls ------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._flying)

    @property
    def ready(self) -> bool:
        """Answers to take without reading the socket: a loss, as the real ones."""
        return any(answer.lost for answer in self._answered)

    def begin(self, session: Session) -> bool:
        if self.connected:
            self.tx_status = "I"
            return True
        return self.connect(session)

    def connect(self, session: Session) -> bool:
        self.close()
        self.connects += 1
        if self.refuse > 0:
            self.refuse -= 1
            self.error = "connection refused"
            return False
        self.connected, self.error, self.tx_status = True, "", "I"
        return True

    def exclusive(self, statement: Statement, shared: Wire | None = None) -> bool:
        return statement.sql in self.exclusive_sql

    def send(self, statement: Statement, timed: bool = True, shared: Wire | None = None) -> None:
        assert self.connected, "sent on a closed connection"
        assert len(self._flying) < self.depth, "more in flight than the connection's depth"
        self._flying.append(statement)
        self.sent.append((statement.seq, timed))
        self.most_in_flight = max(self.most_in_flight, len(self._flying))

    def flush(self) -> None:
        pass

    def poll(self) -> list[Answer]:
        answers, self._answered = self._answered, []
        return answers

    def check_deadline(self, now: float) -> None:
        self.deadline_checks.append(now)

    def cancel(self) -> None:
        self.cancels += 1

    def close(self) -> None:
        if self.connected:
            self.closes += 1
        self.connected, self.tx_status = False, ""
        self._flying.clear()

    # --- what the test does -----------------------------------------------------

    def arrive(self, count: int | None = None) -> int:
        """The server answers the ``count`` oldest requests in flight (all: None)."""
        done = 0
        while self._flying and (count is None or done < count):
            self._answered.append(self._execute(self._flying.popleft()))
            done += 1
        return done

    def lose(self, message: str = "server closed the connection unexpectedly") -> None:
        """The connection breaks: the oldest request in flight gets a lost answer, the
        ones behind it none (as :meth:`PipelinedConnection._lose`)."""
        if self._flying:
            self._answered.append(Answer([lost_outcome(message)], "", lost=True))
        self.error = message
        self.close()

    def _execute(self, statement: Statement) -> Answer:
        texts = statement.batch.split(";") if statement.batch is not None else [statement.sql]
        outcomes = [self._one(text.strip()) for text in texts]
        return Answer(outcomes, self.tx_status)

    def _one(self, sql: str) -> TargetOutcome:
        word = sql.split()[0].upper()
        if self.tx_status == "E":
            if word in ("COMMIT", "ROLLBACK"):
                self.tx_status = "I"
                return TargetOutcome("ok", tag="ROLLBACK")
            return TargetOutcome("error", sqlstate=IN_FAILED_TRANSACTION, message="aborted")
        if self.failing in sql:
            self.tx_status = "E" if self.tx_status == "T" else "I"
            return TargetOutcome("error", sqlstate="42703", message="column does not exist")
        if word == "BEGIN":
            self.tx_status = "T"
        elif word in ("COMMIT", "ROLLBACK"):
            self.tx_status = "I"
        return TargetOutcome("ok", tag=word, rows=1 if word == "SELECT" else None)


def drive(run: SessionRun, limit: int = 10_000) -> None:
    """What the event loop does for one session, with every answer arriving at once:
    advance, then hand each busy lane's answers to the run, until it is finished."""
    run.advance()
    for _ in range(limit):
        if run.finished:
            return
        for lane in run.lanes:
            if lane.busy:
                lane.connection.arrive()  # type: ignore[union-attr]
                run.answer(lane)
        run.advance()
    raise AssertionError("the session never finished")
