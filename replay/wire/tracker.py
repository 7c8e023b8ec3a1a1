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

The tracker is a composition: one :class:`~replay.wire.state.ProtocolState` holds all
the connection remembers, a :class:`~replay.wire.requests.RequestHandler` reads client
messages into it and an :class:`~replay.wire.answers.AnswerHandler` server messages;
the tracker owns the two framers and is the only one that catches exceptions.
"""

from __future__ import annotations

from replay.model.records import Record, SessionEnd
from replay.wire import messages as m
from replay.wire.answers import AnswerHandler
from replay.wire.decoder import BackendDecoder, FrontendDecoder
from replay.wire.requests import RequestHandler
from replay.wire.state import ProtocolState

_DATA_ROW = m.B_DATA_ROW


class ConnectionTracker:
    """One connection's framers, protocol state and handlers, producing its records.

    Built with the session id, the client address, the start time, and
    ``digest_rows``/``copy_cap`` (see :class:`~replay.wire.state.ProtocolState`).
    """

    __slots__ = ("_answers", "_back", "_closed", "_front", "_requests", "session_id", "state")

    def __init__(
        self,
        session_id: str,
        client: str,
        start: float,
        *,
        digest_rows: bool = True,
        copy_cap: int = 1 << 20,
    ) -> None:
        self.session_id = session_id
        # The one object both handlers read and change; public for tests and debugging.
        self.state = ProtocolState(
            session_id, client, start, digest_rows=digest_rows, copy_cap=copy_cap
        )
        self._requests = RequestHandler(self.state)
        self._answers = AnswerHandler(self.state)
        # Without digests, row and COPY-out bodies are skipped by the decoder unread.
        skip_rows = frozenset() if digest_rows else frozenset({m.B_DATA_ROW, m.B_COPY_DATA})
        self._front = FrontendDecoder()
        self._back = BackendDecoder(drop=skip_rows)
        self._closed = False

    @property
    def desynchronized(self) -> bool:
        return self.state.desync

    @property
    def reason(self) -> str:
        """Why this connection is not (or no longer) recorded; empty while it is."""
        return self.state.reason

    # -- the addon's API ---------------------------------------------------------------

    def client_data(self, data: bytes, ts: float) -> None:
        state = self.state
        if state.reason:
            return
        try:
            on_client = self._requests.on_client
            for kind, body in self._front.feed(data):
                on_client(kind, body, ts)
                if state.reason:
                    return
            if self._front.reason:
                state.stop(self._front.reason)
        except Exception as exc:
            state.stop(f"internal error on client data: {type(exc).__name__}: {exc}"[:300])

    def server_data(self, data: bytes, ts: float) -> None:
        state = self.state
        if state.reason:
            return
        try:
            queue = state.queue
            on_server = self._answers.on_server
            for kind, body in self._back.feed(data):
                if kind == _DATA_ROW:  # the hot path: no dispatch, no parsing
                    if queue:
                        result = queue[0].result
                        if result is not None:
                            result.row(body)
                    continue
                on_server(kind, body, ts)
                if state.reason:
                    return
            if self._back.reason:
                state.stop(self._back.reason)
        except Exception as exc:
            state.stop(f"internal error on server data: {type(exc).__name__}: {exc}"[:300])

    def pop_records(self) -> list[Record]:
        state = self.state
        records, state.ready = state.ready, []
        return records

    def close(self, ts: float) -> list[Record]:
        """What is complete, then the SessionEnd; later calls return nothing."""
        if self._closed:
            return []
        self._closed = True
        state = self.state
        try:
            state.release()
            if state.session is None and not state.reason:
                state.reason = "no startup message"
        except Exception as exc:  # never let the proxy see an exception
            state.stop(f"internal error on close: {type(exc).__name__}")
        end = SessionEnd(self.session_id, ts, state.seq, not state.reason, state.reason)
        return [*self.pop_records(), end]
