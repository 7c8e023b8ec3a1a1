"""The replay connection: one protocol, two implementations, their shared rules once.

A :class:`~replay.engine.lane.Lane` and the event loop drive a target's connection
through :class:`Connection` only. Two implementations (see docs/design.md, "Stage 3"):

- :class:`~replay.engine.pipeline.PipelinedConnection` writes the requests' bytes on
  libpq's socket itself, many in flight (plaintext targets);
- :class:`~replay.engine.target.TargetConnection` drives libpq one statement at a time
  (targets reached over TLS or GSSAPI encryption, where only libpq may use the socket).

What they share lives in :class:`ReplayConnection`: libpq opens the connection with the
session's startup (:mod:`replay.engine.startup`); a clean connection with the same
startup serves the slot's next session after a reset (ROLLBACK if needed, DISCARD ALL);
the watchdog cancels a statement still running well past ``statement_timeout`` (the
application may have turned the server-side timeout off) and drops a connection that
does not answer even that, so the replay never hangs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg import pq

from replay.engine.encode import Wire
from replay.engine.plan import Prepared
from replay.engine.responses import Answer
from replay.engine.result import ExecStatus
from replay.engine.startup import WATCHDOG_GRACE, Timeouts, open_connection, startup_conninfo
from replay.model.records import Session, Statement
from replay.targets.target import Target


class Connection(Protocol):
    """What a lane and the event loop need of a replay connection to one target."""

    depth: int  # statements it may have in flight at once
    error: str  # why the last connect failed, or the connection was lost

    @property
    def connected(self) -> bool: ...
    @property
    def tx_status(self) -> str:
        """I, T or E as in ReadyForQuery; "" without a usable connection."""
        ...

    @property
    def in_flight(self) -> int: ...
    @property
    def ready(self) -> bool:
        """Answers are there to be taken without reading the socket."""
        ...

    @property
    def wants_write(self) -> bool: ...
    @property
    def socket(self) -> int:
        """The socket the event loop watches, -1 without one."""
        ...

    def begin(self, session: Session) -> bool: ...
    def connect(self, session: Session) -> bool: ...
    def close(self) -> None: ...
    def exclusive(self, statement: Statement, shared: Wire | None = None) -> bool: ...
    def send(self, statement: Statement, timed: bool = True, shared: Wire | None = None) -> None:
        """Send ``statement`` (``shared``: its :func:`replay.engine.encode.wire`)."""
        ...

    def flush(self) -> None: ...
    def poll(self) -> list[Answer]:
        """Read without blocking; the answers completed, oldest first."""
        ...

    def check_deadline(self, now: float) -> None: ...
    def cancel(self) -> None: ...


@dataclass
class ReplayConnection:
    """The parts both replay connections share; subclasses say how statements go."""

    target: Target
    timeouts: Timeouts = field(default_factory=Timeouts)
    depth: int = 1
    pgconn: pq.abc.PGconn | None = None
    startup: str = ""
    prepared: Prepared = field(default_factory=dict)
    error: str = ""
    # The watchdog's clock: since when the oldest statement in flight could be running,
    # and when it was cancelled (None: not yet).
    _waiting_since: float = 0.0
    _cancelled_at: float | None = None

    # --- what each implementation says ---------------------------------------------

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    def _transaction(self) -> str:
        """The transaction status (I, T or E), "" when unknown."""
        raise NotImplementedError

    @property
    def _running(self) -> bool:
        """A statement was sent and its answer is not complete yet."""
        raise NotImplementedError

    def _idle(self) -> bool:
        """Nothing sent and unanswered, nothing unread: the connection may be reset."""
        return True

    def _opened(self) -> None:
        """The connection just opened (``pgconn`` is set)."""

    def _closed(self) -> None:
        """The connection was just closed: forget what was in flight."""

    def _lose(self, message: str) -> None:
        """The connection broke: the statement in flight gets ``lost``."""
        raise NotImplementedError

    # --- connection ------------------------------------------------------------------

    def begin(self, session: Session) -> bool:
        """Ready a connection for ``session``: reuse a clean one with the same startup."""
        wanted = startup_conninfo(self.target.conninfo, session, self.timeouts)
        if self.connected and wanted == self.startup and self._reset():
            return True
        return self.connect(session)

    def _reset(self) -> bool:
        """Leave the connection as a new one would be: no transaction, nothing prepared,
        no session state (DISCARD ALL)."""
        assert self.pgconn is not None
        status = self._transaction()
        if not self._idle() or status not in ("I", "T", "E"):
            return False
        commands = [b"ROLLBACK", b"DISCARD ALL"] if status != "I" else [b"DISCARD ALL"]
        try:
            for command in commands:
                if self.pgconn.exec_(command).status != ExecStatus.COMMAND_OK:
                    return False
        except psycopg.OperationalError:
            return False
        self.prepared.clear()
        return True

    def connect(self, session: Session) -> bool:
        """(Re)connect with the session's startup parameters; False, with ``error``, if not."""
        self.close()
        self.pgconn, self.startup, self.error = open_connection(
            self.target.conninfo, session, self.timeouts
        )
        if self.pgconn is None:
            return False
        self._opened()
        return True

    def close(self) -> None:
        if self.pgconn is not None:
            self.pgconn.finish()
        self.pgconn = None
        self.prepared.clear()
        self._cancelled_at = None
        self._closed()

    # --- watchdog and cancel ---------------------------------------------------------

    def check_deadline(self, now: float) -> None:
        """Cancel a statement past the watchdog, then give up on its connection."""
        watchdog = self.timeouts.watchdog
        if watchdog is None or not self._running or self.pgconn is None:
            return
        if self._cancelled_at is None:
            if now - self._waiting_since < watchdog:
                return
            self._cancelled_at = now
            try:
                self.pgconn.get_cancel().cancel()
            except psycopg.OperationalError:
                self._lose("cancel request failed")
            return
        if now - self._cancelled_at >= WATCHDOG_GRACE:
            self._lose(
                f"no answer {now - self._waiting_since:.0f}s after sending, even to a cancel"
            )

    def cancel(self) -> None:
        """Cancel a running statement (the run is stopping)."""
        if self._running and self.pgconn is not None:
            try:
                self.pgconn.get_cancel().cancel()
            except psycopg.OperationalError:
                self.close()
