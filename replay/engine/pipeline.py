"""One replay connection to one target, with a session's statements pipelined.

libpq opens the connection (every authentication method, every connection option the
user's URL may hold); once it is ready, and only when it is not encrypted, the replay
writes its requests on libpq's socket itself and reads the answers with
:class:`~replay.engine.responses.AnswerReader`. That lets a session have up to
``depth`` statements in flight: the server finds the next one already waiting when it
finishes one, instead of going to sleep on its socket after every answer, and the
replay writes and reads many statements per system call. Nothing about the
statements changes: each is still its own Query (or its own Parse/Bind/Execute/Sync),
executed in captured order, one after the other, by the one backend. libpq's
protocol state is untouched by all this (it only ever sees an idle connection): it
still runs the reset between two sessions and the cancel requests.

What depends on an answer is never sent ahead of it: see
:mod:`replay.engine.encode` for the exclusive requests, and
:class:`replay.engine.lane.Lane` for the rest (timed statements, batches, a lost
connection).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import pq

from replay.engine.encode import Wire, copy_in, request
from replay.engine.plan import Prepared, track
from replay.engine.responses import Answer, AnswerReader, Request, lost_answer
from replay.engine.result import ExecStatus
from replay.engine.startup import WATCHDOG_GRACE, Reusable, Timeouts, open_connection
from replay.model.records import Session, Statement
from replay.targets.safety import Target

READ_SIZE = 1 << 18
DEPTH = 256


def encrypted(pgconn: pq.abc.PGconn) -> bool:
    """Whether libpq encrypts the connection (then only libpq may use its socket)."""
    return bool(pgconn.ssl_in_use or pgconn.used_gssapi)


@dataclass
class PipelinedConnection(Reusable):
    """The replay's pipelined connection to one target for the session in its slot."""

    target: Target
    timeouts: Timeouts = field(default_factory=Timeouts)
    depth: int = DEPTH
    pgconn: pq.abc.PGconn | None = None
    startup: str = ""
    prepared: Prepared = field(default_factory=dict)
    error: str = ""
    tx_status: str = ""
    _reader: AnswerReader = field(default_factory=AnswerReader)
    _out: bytearray = field(default_factory=bytearray)
    _fd: int = -1
    _ready: list[Answer] = field(default_factory=list)
    _progress: float = 0.0  # when the oldest request in flight could start running
    _cancelled_at: float | None = None
    _built: tuple[Statement, Request] | None = None  # the request exclusive() just built

    # --- connection --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.pgconn is not None

    @property
    def in_flight(self) -> int:
        return len(self._reader.pending)

    @property
    def ready(self) -> bool:
        """Answers are there to be taken without reading the socket (a loss)."""
        return bool(self._ready)

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    @property
    def socket(self) -> int:
        return self._fd

    def _reset(self) -> bool:
        assert self.pgconn is not None
        if self.in_flight or self._out or self._reader.buffered:
            return False
        commands = [b"ROLLBACK", b"DISCARD ALL"] if self.tx_status != "I" else [b"DISCARD ALL"]
        try:
            for command in commands:
                if self.pgconn.exec_(command).status != ExecStatus.COMMAND_OK:
                    return False
        except psycopg.OperationalError:
            return False
        self.prepared.clear()
        self.tx_status = "I"
        return True

    def connect(self, session: Session) -> bool:
        """(Re)connect with the session's startup parameters; False, with ``error``, if not."""
        self.close()
        self.pgconn, self.startup, self.error = open_connection(
            self.target.conninfo, session, self.timeouts
        )
        if self.pgconn is None:
            return False
        self._fd = self.pgconn.socket
        self.tx_status = "I"
        return True

    def close(self) -> None:
        if self.pgconn is not None:
            self.pgconn.finish()
        self.pgconn = None
        self._fd = -1
        self.prepared.clear()
        self._reader = AnswerReader()
        self._out.clear()
        self._cancelled_at = None
        self.tx_status = ""

    # --- statements --------------------------------------------------------------

    def exclusive(self, statement: Statement, shared: Wire | None = None) -> bool:
        """Whether ``statement`` must be alone in flight (see :mod:`replay.engine.encode`)."""
        if shared is not None:
            return shared.exclusive
        built = self._built
        if built is not None and built[0] is statement:
            return built[1].exclusive
        item = request(statement, self.prepared)
        self._built = (statement, item)
        return item.exclusive

    def send(self, statement: Statement, timed: bool = False, shared: Wire | None = None) -> None:
        """Queue ``statement``'s request (written by :meth:`flush`); a ``timed`` one is
        sent alone, which the caller arranges. ``shared``: its :func:`encode.wire`."""
        built, self._built = self._built, None
        item = built[1] if built is not None and built[0] is statement else None
        if item is None:
            item = request(statement, self.prepared, shared)
        now = time.perf_counter()
        if not self._reader.pending:
            self._progress = now
        self._reader.add(item, now)
        self._out += item.data

    def flush(self) -> None:
        """Write what is queued, as far as the socket takes it now."""
        if not self._out or self.pgconn is None:
            return
        try:
            written = os.write(self._fd, self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lose(f"connection lost while sending: {exc.strerror or exc}")
            return
        del self._out[:written]

    def poll(self) -> list[Answer]:
        """Read what has arrived without blocking; the answers it completes, in order."""
        answers, self._ready = self._ready, []
        if self.pgconn is None:
            return answers
        self.flush()
        reader = self._reader
        while self.pgconn is not None:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                self._lose(f"connection lost: {exc.strerror or exc}")
                break
            if not data:
                self._lose("server closed the connection unexpectedly")
                break
            now = time.perf_counter()
            for answer in reader.feed(data, now):
                self._settle(answer, now)
                answers.append(answer)
            if reader.copy_wanted is not None:
                wanted, reader.copy_wanted = reader.copy_wanted, None
                self._out += copy_in(wanted.copy_in, wanted.extended)
                self.flush()
            if reader.fatal is not None:
                self._lose(reader.fatal)
                break
            if len(data) < READ_SIZE:
                break
        answers.extend(self._ready)
        self._ready = []
        return answers

    def _settle(self, answer: Answer, now: float) -> None:
        """Keep the map of prepared names true, after an answer."""
        self.tx_status = answer.tx_status
        self._progress = now
        self._cancelled_at = None
        item = answer.request
        if item is None:
            return
        if item.prepares is not None:
            name, key = item.prepares
            if item.parsed:
                self.prepared[name] = key  # type: ignore[assignment]
            else:
                self.prepared.pop(name, None)
        if any(o.status == "ok" for o in answer.outcomes):
            track(self.prepared, item.sql)

    def _lose(self, message: str) -> None:
        """The connection broke: the oldest request in flight is lost, the ones behind it
        were never answered (the lane sends them again, or skips them). Between two
        requests it is only closed: the next statement reconnects."""
        pending = self._reader.pending
        if pending:
            self._ready.append(lost_answer(message, pending[0], time.perf_counter()))
        self.error = message
        self.close()

    # --- watchdog ----------------------------------------------------------------

    def check_deadline(self, now: float) -> None:
        """Cancel a statement past the watchdog, then give up on its connection."""
        watchdog = self.timeouts.watchdog
        if watchdog is None or not self.in_flight or self.pgconn is None:
            return
        if self._cancelled_at is None:
            if now - self._progress < watchdog:
                return
            self._cancelled_at = now
            try:
                self.pgconn.get_cancel().cancel()
            except psycopg.OperationalError:
                self._lose("cancel request failed")
            return
        if now - self._cancelled_at >= WATCHDOG_GRACE:
            self._lose(f"no answer {now - self._progress:.0f}s after sending, even to a cancel")

    def cancel(self) -> None:
        """Cancel a running statement (the run is stopping)."""
        if self.in_flight and self.pgconn is not None:
            try:
                self.pgconn.get_cancel().cancel()
            except psycopg.OperationalError:
                self.close()
