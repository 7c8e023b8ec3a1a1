"""The protocol state of one connection that request and answer handling share.

:class:`ProtocolState` holds what the server has (prepared statements, portals), what
it still owes (the queue of :class:`~replay.wire.pending.Pending` requests) and the
records waiting for their ReadyForQuery; the helpers here build statement records
and keep those structures consistent when the server skips messages.
"""

from __future__ import annotations

from collections import deque

from replay.model.records import Record, Session, Statement
from replay.wire import messages as m
from replay.wire.decoder import BackendDecoder, FrontendDecoder
from replay.wire.pending import (
    CLOSE,
    PARSE,
    SYNC,
    Pending,
    Portal,
    Prepared,
    QueryPending,
    Result,
)

SECRET_NOTE = "secret redacted"


class ProtocolState:
    """State and shared helpers of a :class:`~replay.wire.tracker.ConnectionTracker`."""

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
        self._client = client
        self._start = start
        self._digest_rows = digest_rows
        self._copy_cap = copy_cap
        # Without digests, row and COPY-out bodies are skipped by the decoder unread.
        skip_rows = frozenset() if digest_rows else frozenset({m.B_DATA_ROW, m.B_COPY_DATA})
        self._front = FrontendDecoder()
        self._back = BackendDecoder(drop=skip_rows)
        self._session: Session | None = None
        self._session_sent = False
        self._ready: list[Record] = []
        self._awaiting: list[Statement] = []
        self._queue: deque[Pending] = deque()
        self._prepared: dict[str, Prepared] = {}
        self._portals: dict[str, Portal] = {}
        self._seq = 0
        self._reason = ""
        self._desync = False
        self._skipping = False
        self._copy_in: Result | None = None
        self._copy_both = False
        self._closed = False

    def _query_result(self, item: QueryPending, ts: float) -> Result:
        statements, index = item.statements, item.index
        # One statement keeps the exact string the client sent; several are named by
        # their own text, with the whole string as the batch replay must send.
        sql = statements[index][0] if len(statements) > 1 and index < len(statements) else item.sql
        statement = Statement(self.session_id, 0, ts, sql, batch=item.batch, batch_index=index)
        if item.redacted:
            statement.replayable = False
            statement.note = SECRET_NOTE
        return Result(statement, self._digest_rows, self._copy_cap)

    def _extended_statement(self, portal: Portal | None, portal_name: str, ts: float) -> Statement:
        prepared = portal.prepared if portal is not None else None
        statement = Statement(
            self.session_id,
            0,
            ts,
            prepared.sql if prepared else "",
            protocol="extended",
            portal_name=portal_name,
        )
        if portal is not None:
            statement.params = portal.params
            statement.param_formats = portal.param_formats
            statement.result_formats = portal.result_formats
            statement.statement_name = portal.statement_name
        if prepared is not None:
            statement.param_types = prepared.param_types
            if prepared.note:
                statement.replayable = False
                statement.note = prepared.note
        else:
            statement.replayable = False
            statement.note = "unknown portal" if portal is None else "unknown prepared statement"
        return statement

    def _discard_until_sync(self) -> None:
        """The server skips every message up to the next Sync (Protocol 55.2.3): they
        produce no records and their effects on names never happened."""
        queue = self._queue
        skipped = []
        while queue and queue[0].kind != SYNC:
            skipped.append(queue.popleft())
        for item in reversed(skipped):
            self._undo(item)
        if not queue:
            self._skipping = True

    def _undo(self, item: Pending) -> None:
        if item.kind == PARSE:
            if item.previous is not None and item.name:
                self._prepared[item.name] = item.previous
            else:
                self._prepared.pop(item.name, None)
        elif item.kind == CLOSE and item.previous is not None:
            self._prepared[item.name] = item.previous

    def _emit(self, statement: Statement) -> None:
        self._seq += 1
        statement.seq = self._seq
        self._awaiting.append(statement)

    def _with_columns(self, item: Pending) -> Result:
        result = item.result
        assert result is not None
        if isinstance(item.target, Portal):
            result.statement.columns = list(item.target.result_columns())
        return result

    def _send_session(self) -> None:
        if self._session is not None and not self._session_sent:
            self._session_sent = True
            self._ready.append(self._session)

    def _stop(self, reason: str, desync: bool = True) -> None:
        self._reason = reason
        self._desync = desync
        self._queue.clear()
        self._prepared.clear()
        self._portals.clear()
        self._copy_in = None

    # Each answer handler completes the head of the queue; False means the answer does
    # not fit the request, i.e. we lost track of the conversation.
