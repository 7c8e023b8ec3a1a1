"""The protocol state of one connection, the one object request and answer handling share.

:class:`ProtocolState` holds what the server has (prepared statements, portals), what
it still owes (the queue of :class:`~replay.wire.pending.Pending` requests), the
records waiting for their ReadyForQuery, and whether the connection is still
recorded. Its methods are the rules that only touch that state: building statement
records, numbering them, releasing them, and keeping names consistent when the server
skips messages. :class:`~replay.wire.requests.RequestHandler` and
:class:`~replay.wire.answers.AnswerHandler` each hold a reference to it; neither keeps
state of its own (docs/design.md, the wire tracker).
"""

from __future__ import annotations

from collections import deque

from replay.model.records import Record, Session, Statement
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
    """Everything one connection's tracker remembers between two messages."""

    __slots__ = (
        "awaiting",
        "client",
        "copy_both",
        "copy_cap",
        "copy_in",
        "desync",
        "digest_rows",
        "portals",
        "prepared",
        "queue",
        "ready",
        "reason",
        "seq",
        "session",
        "session_id",
        "session_sent",
        "skipping",
        "start",
    )

    def __init__(
        self,
        session_id: str,
        client: str,
        start: float,
        *,
        digest_rows: bool = True,
        copy_cap: int = 1 << 20,
    ) -> None:
        # What every record of the connection carries, as the capture gave it.
        self.session_id = session_id
        self.client = client
        self.start = start
        # Whether results get row digests, and the COPY data kept per statement.
        self.digest_rows = digest_rows
        self.copy_cap = copy_cap
        # The Session record, once the startup packet arrived; sent with the first
        # records released (or at close) so that it always comes first.
        self.session: Session | None = None
        self.session_sent = False
        # Records the caller may take (pop_records), and statements complete but held
        # until the ReadyForQuery that gives their transaction status.
        self.ready: list[Record] = []
        self.awaiting: list[Statement] = []
        # One item per client message that expects an answer, in order (Protocol 55.2.4).
        self.queue: deque[Pending] = deque()
        # The server-side names: statements by Parse, portals by Bind.
        self.prepared: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        # The number of the last statement emitted (Statement.seq counts from 1).
        self.seq = 0
        # Why the connection is no longer recorded (empty while it is), and whether
        # that is because we lost track of the conversation.
        self.reason = ""
        self.desync = False
        # After an error in the extended protocol, client messages up to Sync are
        # skipped by the server (Protocol 55.2.3).
        self.skipping = False
        # The statement whose COPY FROM STDIN data the client is sending, if any.
        self.copy_in: Result | None = None
        # In COPY BOTH (replication) nothing more is recorded until ReadyForQuery.
        self.copy_both = False

    def query_result(self, item: QueryPending, ts: float) -> Result:
        """The Result of the Query's current statement (``item.index``)."""
        statements, index = item.statements, item.index
        # One statement keeps the exact string the client sent; several are named by
        # their own text, with the whole string as the batch replay must send.
        sql = statements[index][0] if len(statements) > 1 and index < len(statements) else item.sql
        statement = Statement(self.session_id, 0, ts, sql, batch=item.batch, batch_index=index)
        if item.redacted:
            statement.replayable = False
            statement.note = SECRET_NOTE
        return Result(statement, self.digest_rows, self.copy_cap)

    def extended_statement(self, portal: Portal | None, portal_name: str, ts: float) -> Statement:
        """The record of an Execute (or a failed Bind) of ``portal``."""
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

    def discard_until_sync(self) -> None:
        """The server skips every message up to the next Sync (Protocol 55.2.3): they
        produce no records and their effects on names never happened."""
        queue = self.queue
        skipped = []
        while queue and queue[0].kind != SYNC:
            skipped.append(queue.popleft())
        for item in reversed(skipped):
            self.undo(item)
        if not queue:
            self.skipping = True

    def undo(self, item: Pending) -> None:
        """Put back the statement name a Parse or Close the server never ran changed."""
        if item.kind == PARSE:
            if item.previous is not None and item.name:
                self.prepared[item.name] = item.previous
            else:
                self.prepared.pop(item.name, None)
        elif item.kind == CLOSE and item.previous is not None:
            self.prepared[item.name] = item.previous

    def emit(self, statement: Statement) -> None:
        """Number a complete statement and hold it until the next ReadyForQuery."""
        self.seq += 1
        statement.seq = self.seq
        self.awaiting.append(statement)

    def release(self, tx_status: str | None = None) -> None:
        """Hand the held statements out, after the Session; ``tx_status`` is the
        transaction status the ReadyForQuery reported, None at close (not known)."""
        if self.session is not None and not self.session_sent:
            self.session_sent = True
            self.ready.append(self.session)
        awaiting = self.awaiting
        if tx_status is not None:
            for statement in awaiting:
                statement.tx_status = tx_status  # type: ignore[assignment]
        self.ready.extend(awaiting)
        self.awaiting = []

    def stop(self, reason: str, desync: bool = True) -> None:
        """Stop recording the connection, forgetting what no record will need."""
        self.reason = reason
        self.desync = desync
        self.queue.clear()
        self.prepared.clear()
        self.portals.clear()
        self.copy_in = None
