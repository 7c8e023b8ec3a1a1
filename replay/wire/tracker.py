"""Turn the two byte streams of one PostgreSQL connection into capture records.

:class:`ConnectionTracker` is what the capture addon calls from its worker thread:
bytes in each direction go in as the proxy sees them, :mod:`replay.model.records` come out.
It never raises: a stream that is not PostgreSQL, that desynchronizes, or that trips a
bug here stops being recorded (the proxy keeps forwarding it) and its
:class:`~replay.model.records.SessionEnd` says why.

Requests and answers are matched with a queue: the server answers client messages in
order (Protocol 55.2.4), so each message that expects an answer enqueues a
:class:`~replay.wire.pending.Pending`, and each answer completes the head. Statements
are held until the ReadyForQuery that follows them, which carries the transaction
status they leave behind. Memory is bounded by what is pending until the next Sync plus
the prepared statements and portals the client keeps open.
"""

from __future__ import annotations

from replay.model.records import Record, SessionEnd
from replay.wire.answers import _DATA_ROW, AnswerHandling
from replay.wire.requests import RequestHandling


class ConnectionTracker(RequestHandling, AnswerHandling):
    """Protocol state of one connection, producing its records.

    Built with :class:`~replay.wire.state.ProtocolState`'s arguments: the session id, the
    client address, the start time, and ``digest_rows``/``copy_cap``.
    """

    @property
    def desynchronized(self) -> bool:
        return self._desync

    @property
    def reason(self) -> str:
        """Why this connection is not (or no longer) recorded; empty while it is."""
        return self._reason

    # -- the addon's API ---------------------------------------------------------------

    def client_data(self, data: bytes, ts: float) -> None:
        if self._reason:
            return
        try:
            for kind, body in self._front.feed(data):
                self._on_client(kind, body, ts)
                if self._reason:
                    return
            if self._front.reason:
                self._stop(self._front.reason)
        except Exception as exc:
            self._stop(f"internal error on client data: {type(exc).__name__}: {exc}"[:300])

    def server_data(self, data: bytes, ts: float) -> None:
        if self._reason:
            return
        try:
            queue = self._queue
            for kind, body in self._back.feed(data):
                if kind == _DATA_ROW:  # the hot path: no dispatch, no parsing
                    if queue:
                        result = queue[0].result
                        if result is not None:
                            result.row(body)
                    continue
                self._on_server(kind, body, ts)
                if self._reason:
                    return
            if self._back.reason:
                self._stop(self._back.reason)
        except Exception as exc:
            self._stop(f"internal error on server data: {type(exc).__name__}: {exc}"[:300])

    def pop_records(self) -> list[Record]:
        records, self._ready = self._ready, []
        return records

    def close(self, ts: float) -> list[Record]:
        """What is complete, then the SessionEnd; later calls return nothing."""
        if self._closed:
            return []
        self._closed = True
        try:
            self._send_session()
            self._ready.extend(self._awaiting)
            self._awaiting = []
            if self._session is None and not self._reason:
                self._reason = "no startup message"
        except Exception as exc:  # never let the proxy see an exception
            self._stop(f"internal error on close: {type(exc).__name__}")
        end = SessionEnd(self.session_id, ts, self._seq, not self._reason, self._reason)
        return [*self.pop_records(), end]
