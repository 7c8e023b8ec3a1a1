"""One session's replay on one target: a lane, advancing on its own.

Each target replays the session in captured order, but not in lockstep with the other
targets: a lane may run up to the session's window ahead. Lockstep would let two
sessions block each other *across* targets (A waits for B's row lock on the baseline
while B waits for A's on the candidate), which no server can detect as a deadlock.

A lane may have several statements in flight (up to its connection's ``depth``), sent
but not yet answered; what depends on an answer waits for it: an exclusive request
(:mod:`replay.engine.encode`), a timed statement (alone, so its duration is the
server's), a statement that is not sent (its outcome must come in order) and the later
statements of a multi-statement Query (they take their outcomes from its answer).

A lane whose connection is lost gets ``lost`` for that statement and ``skipped`` until
the captured session was next outside a transaction; there it reconnects and
continues. It remembers the first failure of the open transaction, so errors that
only cascade from it (25P02), and the ROLLBACK a COMMIT of it gets, can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replay.engine.connection import Connection
from replay.engine.encode import Wire
from replay.engine.responses import Answer
from replay.engine.result import IN_FAILED_TRANSACTION, lost_outcome, skipped_outcome
from replay.model.outcomes import TargetOutcome
from replay.model.records import Session, Statement
from replay.sql.commands import commands


@dataclass
class _Batch:
    """The answers to a multi-statement Query, handed out one per captured statement."""

    text: str
    index: int
    outcomes: list[TargetOutcome] = field(default_factory=list)


def nth_outcome(outcomes: list[TargetOutcome], index: int) -> TargetOutcome:
    """The answer to the ``index``-th statement of a Query."""
    if index < len(outcomes):
        return outcomes[index]
    if outcomes and outcomes[-1].status == "lost":
        return skipped_outcome("connection lost earlier in its Query")
    if not outcomes:
        return skipped_outcome("no answer")
    return skipped_outcome("not executed: an earlier statement of its Query failed")


@dataclass
class Lane:
    """The state of one target's replay of the current session."""

    name: str
    connection: Connection  # a PipelinedConnection or a TargetConnection
    position: int = 0  # statements of the session answered (or settled) on this lane
    sent: int = 0  # statements sent or settled: position + those in flight
    exclusive: bool = False  # what is in flight must stay alone
    refilling: bool = True  # below depth since last empty or half-empty
    lost_at: int | None = None
    failed_at: int | None = None
    boundary: bool = True
    batch: _Batch | None = None
    fd: int = -1  # the socket the event loop watches for this lane, if any
    events: int = 0  # what the event loop watches it for

    @property
    def busy(self) -> bool:
        return self.sent > self.position

    def begin(self, session: Session) -> None:
        self.position = self.sent = 0
        self.batch, self.exclusive = None, False
        self.lost_at = self.failed_at = None
        self.boundary = True
        if not self.connection.begin(session):
            self.lost_at = 0

    def may_send(self, statement: Statement, timed: bool, shared: Wire | None = None) -> bool:
        """Whether ``statement`` may go now, given what is in flight. A lane that filled
        its connection's ``depth`` waits until half of it is answered: the server then
        finds many statements at once, and the replay writes them in one call."""
        connection = self.connection
        flying = self.sent - self.position
        if flying == 0:
            self.refilling = True
            return not connection.ready
        if not self.refilling:
            if flying > connection.depth // 2:
                return False
            self.refilling = True
        if flying >= connection.depth:
            self.refilling = False
            return False
        if self.exclusive or timed:
            return False
        if statement.batch_index > 0 or not statement.replayable:
            return False
        if statement.protocol == "function" or not connection.connected:
            return False
        return not connection.exclusive(statement, shared)

    def start(
        self, statement: Statement, session: Session, timed: bool = True, shared: Wire | None = None
    ) -> TargetOutcome | None:
        """Send ``statement`` (after :meth:`may_send`); an outcome right away when it is
        not sent."""
        self.sent += 1
        if not statement.replayable or statement.protocol == "function":
            note = f": {statement.note}" if statement.note else ""
            return skipped_outcome(f"not replayable{note}")
        batch = self.batch
        if batch and statement.batch == batch.text and statement.batch_index > batch.index:
            batch.index = statement.batch_index
            return nth_outcome(batch.outcomes, statement.batch_index)
        connection = self.connection
        if not connection.connected:
            if not self.boundary and self.lost_at is not None:
                return skipped_outcome(
                    f"connection lost at seq {self.lost_at}; resuming at the next transaction"
                )
            if not connection.connect(session):
                self.lost_at = statement.seq
                return lost_outcome(connection.error)
            self.lost_at = self.failed_at = None
        self.exclusive = self.exclusive or timed or connection.exclusive(statement, shared)
        connection.send(statement, timed, shared)
        return None

    def finish(self, statement: Statement, answer: Answer) -> TargetOutcome:
        """The outcome of the oldest statement in flight, from its answer."""
        outcomes = answer.outcomes
        if statement.batch is not None:
            self.batch = _Batch(statement.batch, statement.batch_index, outcomes)
            outcome = nth_outcome(outcomes, statement.batch_index)
        else:
            self.batch = None
            outcome = nth_outcome(outcomes, 0)
        if outcome.status == "lost":
            self.lost_at = statement.seq
        return outcome

    def settle(
        self, statement: Statement, outcome: TargetOutcome, tx_status: str | None = None
    ) -> int | None:
        """Move past ``statement``, after which the target's transaction status is
        ``tx_status`` (None: the connection's now); the seq it cascades from, if it does."""
        self.position += 1
        if self.sent == self.position:
            self.exclusive = False
        self.boundary = statement.tx_status in ("I", "")
        if tx_status is None:
            tx_status = self.connection.tx_status
        failed = tx_status == "E"
        cascade = None
        if outcome.sqlstate == IN_FAILED_TRANSACTION:
            cascade = self.failed_at
        elif (
            self.failed_at is not None
            and outcome.status == "ok"
            and outcome.tag == "ROLLBACK"
            and commands(statement.sql).ends_transaction
        ):
            # COMMIT (or END, PREPARE TRANSACTION) of a transaction that already failed
            # is not an error: the server answers it with the tag ROLLBACK, which only
            # cascades from the transaction's first failure, like a 25P02 does.
            # Otherwise every COMMIT after a failure would be a "changed" class of its own.
            cascade = self.failed_at
        elif outcome.status in ("error", "timeout") and self.failed_at is None and failed:
            self.failed_at = statement.seq
        if not failed:
            self.failed_at = None
        return cascade
