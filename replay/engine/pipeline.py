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

from psycopg import pq

from replay.engine.connection import ReplayConnection
from replay.engine.encode import Wire, copy_in, request
from replay.engine.plan import track
from replay.engine.responses import Answer, AnswerReader, Request, lost_answer
from replay.model.records import Statement

READ_SIZE = 1 << 18
DEPTH = 256


def encrypted(pgconn: pq.abc.PGconn) -> bool:
    """Whether libpq encrypts the connection (then only libpq may use its socket)."""
    return bool(pgconn.ssl_in_use or pgconn.used_gssapi)


@dataclass
class PipelinedConnection(ReplayConnection):
    """The replay's pipelined connection to one target for the session in its slot."""

    depth: int = DEPTH
    tx_status: str = ""
    _reader: AnswerReader = field(default_factory=AnswerReader)
    _out: bytearray = field(default_factory=bytearray)
    _fd: int = -1
    _ready: list[Answer] = field(default_factory=list)
    _built: tuple[Statement, Request] | None = None  # the request exclusive() just built

    # --- connection --------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.pgconn is not None

    @property
    def in_flight(self) -> int:
        return len(self._reader.pending)

    @property
    def _running(self) -> bool:
        return bool(self._reader.pending)

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

    def _transaction(self) -> str:
        # libpq never sees the requests written here: the status is the last answer's.
        return self.tx_status

    def _idle(self) -> bool:
        return not (self.in_flight or self._out or self._reader.buffered)

    def _reset(self) -> bool:
        if not super()._reset():
            return False
        self.tx_status = "I"
        return True

    def _opened(self) -> None:
        assert self.pgconn is not None
        self._fd = self.pgconn.socket
        self.tx_status = "I"

    def _closed(self) -> None:
        self._fd = -1
        self._reader = AnswerReader()
        self._out.clear()
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
            self._waiting_since = now
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
        self._waiting_since = now  # the next request in flight could start running now
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
