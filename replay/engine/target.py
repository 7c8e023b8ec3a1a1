"""One replay connection to one target, driven at the libpq level, one statement at a time.

The connection for targets reached over TLS or GSSAPI encryption, where the bytes on
the socket are libpq's own (plaintext targets get the pipelined connection of
:mod:`replay.engine.pipeline`). A statement is sent the way the application sent it
(:mod:`replay.engine.plan`). Sending and collecting are separate
(:meth:`TargetConnection.send`, then :meth:`TargetConnection.poll` whenever its socket
is readable, until it returns the answer) so that one event loop drives many
connections while the servers run them in parallel, and each result is timed when it
arrives, not when it is read.

libpq takes one result format for all of a statement's columns; where the application
asked some in binary and others in text, the binary ones are converted after the
statement (:mod:`replay.engine.formats`). Connecting, the reset between two sessions
and the watchdog are :class:`~replay.engine.connection.ReplayConnection`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import psycopg
from psycopg import pq

from replay.engine.connection import ReplayConnection
from replay.engine.encode import Wire
from replay.engine.formats import TEXT, Converting, Formats, libpq_formats
from replay.engine.plan import Step, plan
from replay.engine.responses import Answer
from replay.engine.result import (
    ExecStatus,
    ends_connection,
    error_outcome,
    lost_outcome,
    outcome_of,
)
from replay.engine.startup import one_line
from replay.model.outcomes import TargetOutcome
from replay.model.records import Statement
from replay.wire.digest import RowDigest

_TX_STATUS = {
    pq.TransactionStatus.IDLE: "I",
    pq.TransactionStatus.INTRANS: "T",
    pq.TransactionStatus.INERROR: "E",
}


@dataclass
class TargetConnection(ReplayConnection):
    """The replay's connection to one target for the session a worker is replaying."""

    outcomes: list[TargetOutcome] = field(default_factory=list)
    done: bool = True
    _reported: bool = True
    _steps: list[Step] = field(default_factory=list)
    _step: Step | None = None
    _last: float = 0.0
    _copy_out: RowDigest | None = None
    _copy_in: bytes | None = None
    _formats: Formats = TEXT
    _converting: Converting | None = None  # a result whose binary columns are converted

    # --- connection --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.pgconn is not None and self.pgconn.status == pq.ConnStatus.OK

    @property
    def tx_status(self) -> str:
        """I, T or E as in ReadyForQuery; "" without a usable connection."""
        if not self.connected:
            return ""
        assert self.pgconn is not None
        return _TX_STATUS.get(pq.TransactionStatus(self.pgconn.transaction_status), "")

    def _transaction(self) -> str:
        return self.tx_status

    @property
    def _running(self) -> bool:
        return not self.done

    @property
    def in_flight(self) -> int:
        return 0 if self._reported else 1

    @property
    def ready(self) -> bool:
        """An answer is there to be taken without reading the socket."""
        return self.done and not self._reported

    wants_write = False

    def exclusive(self, statement: Statement, shared: Wire | None = None) -> bool:
        return True

    def flush(self) -> None:
        """Everything is written when sent."""

    def _closed(self) -> None:
        self.done = True
        self._reported = True
        self._converting = None

    # --- one statement -----------------------------------------------------------

    def send(self, statement: Statement, timed: bool = True, shared: Wire | None = None) -> None:
        """Send ``statement`` (its first protocol exchange); then :meth:`poll` until it
        returns the answer. Every statement is timed: it is alone in flight."""
        self.start(statement)

    def start(self, statement: Statement, *, now: float | None = None) -> None:
        self.outcomes = []
        self._reported = False
        assert self.pgconn is not None
        self._steps = plan(self.pgconn, statement, self.prepared)
        self._steps.reverse()
        self._copy_in = statement.copy_bytes()
        self._copy_out = None
        self._formats = libpq_formats(statement.result_formats)
        self._converting = None
        self._cancelled_at = None
        self._waiting_since = self._last = now if now is not None else time.perf_counter()
        self.done = False
        self._next_step()

    def _next_step(self) -> None:
        if not self._steps:
            if self._converting is not None:
                self.outcomes.append(self._converting.outcome())
                self._converting = None
            self.done = True
            return
        self._step = self._steps.pop()
        try:
            self._step.send()
        except psycopg.OperationalError as exc:
            self._lose(str(exc))

    def poll(self) -> list[Answer]:
        """Read whatever has arrived without blocking; the answer once there is one."""
        if not self._read() or self._reported:
            return []
        self._reported = True
        lost = bool(self.outcomes) and self.outcomes[-1].status == "lost"
        return [Answer(self.outcomes, "" if lost else self.tx_status, lost=lost)]

    def _read(self) -> bool:
        if self.done:
            return True
        pgconn = self.pgconn
        assert pgconn is not None
        try:
            pgconn.consume_input()
            while not self.done:
                if self._copy_out is not None and not self._read_copy_out():
                    return False
                if pgconn.is_busy():
                    return False
                result = pgconn.get_result()
                if result is None:
                    self._next_step()
                else:
                    self._take(result)
        except psycopg.OperationalError as exc:
            self._lose(str(exc))
        if self.pgconn is not None and self.pgconn.status == pq.ConnStatus.BAD:
            self._lose(one_line(self.pgconn.error_message))
        return self.done

    def _read_copy_out(self) -> bool:
        assert self.pgconn is not None and self._copy_out is not None
        while True:
            size, data = self.pgconn.get_copy_data(1)
            if size == 0:
                return False
            if size < 0:
                return True  # the COPY's final result follows
            self._copy_out.add_datarow(bytes(data))

    def _take(self, result: pq.abc.PGresult) -> None:
        assert self.pgconn is not None and self._step is not None
        now = time.perf_counter()
        status = result.status
        if status == ExecStatus.COPY_IN:
            # PostgreSQL docs 55.2.6: the client answers CopyInResponse with its data.
            if self._copy_in:
                self.pgconn.put_copy_data(self._copy_in)
            self.pgconn.put_copy_end()
            return
        if status == ExecStatus.COPY_OUT:
            self._copy_out = RowDigest()
            return
        kind = self._step.kind
        if kind == "close":
            return
        if kind == "convert":
            self._converted(result)
            return
        if status == ExecStatus.FATAL_ERROR and ends_connection(result):
            # A FATAL error (e.g. the backend was terminated) ends the connection.
            message = error_outcome(result, 0).message or "connection terminated"
            self._lose(message)
            return
        if status == ExecStatus.FATAL_ERROR:
            if kind == "prepare":
                self._steps.clear()  # the execution never happens: its Parse failed
            self.outcomes.append(error_outcome(result, now - self._last))
        elif kind == "execute":
            copied, self._copy_out = self._copy_out, None
            binary = self._formats.binary_columns
            if binary and status == ExecStatus.TUPLES_OK:
                self._convert(result, now - self._last, binary)
            else:
                self.outcomes.append(outcome_of(result, now - self._last, copied))
        if status != ExecStatus.FATAL_ERROR and self._step.on_ok is not None:
            self._step.on_ok()
        if kind == "execute":
            self._last = now

    def _convert(self, result: pq.abc.PGresult, duration: float, binary: tuple[int, ...]) -> None:
        """Hold ``result`` while the columns asked in binary are converted, by the
        queries sent next (see :mod:`replay.engine.formats`)."""
        pgconn = self.pgconn
        assert pgconn is not None
        self._converting = converting = Converting(result, duration, binary)
        for query in reversed(converting.queries()):  # self._steps is in reverse order
            send = partial(pgconn.send_query_params, query.sql, query.values, query.types, None, 1)
            self._steps.append(Step("convert", send))

    def _converted(self, result: pq.abc.PGresult) -> None:
        converting = self._converting
        if converting is None:
            return
        if result.status == ExecStatus.TUPLES_OK:
            converting.take(result)
            return
        if result.status == ExecStatus.FATAL_ERROR and ends_connection(result):
            self._lose(error_outcome(result, 0).message or "connection terminated")
            return
        converting.fail(error_outcome(result, 0).message or "conversion failed")
        self._steps = [step for step in self._steps if step.kind != "convert"]

    def _lose(self, message: str) -> None:
        self.outcomes.append(lost_outcome(message, time.perf_counter() - self._waiting_since))
        self.close()
        self._reported = False  # the lost outcome is still to be taken

    @property
    def socket(self) -> int:
        """The connection's socket, -1 without one."""
        return -1 if self.pgconn is None else self.pgconn.socket
