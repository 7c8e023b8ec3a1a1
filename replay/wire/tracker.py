"""Turn the two byte streams of one PostgreSQL connection into capture records.

:class:`ConnectionTracker` is what the capture addon calls from its worker thread:
bytes in each direction go in as the proxy sees them, :mod:`replay.records` come out.
It never raises: a stream that is not PostgreSQL, that desynchronizes, or that trips a
bug here stops being recorded (the proxy keeps forwarding it) and its
:class:`~replay.records.SessionEnd` says why.

Requests and answers are matched with a queue: the server answers client messages in
order (Protocol 55.2.4), so each message that expects an answer enqueues a
:class:`~replay.wire.pending.Pending`, and each answer completes the head. Statements
are held until the ReadyForQuery that follows them, which carries the transaction
status they leave behind. Memory is bounded by what is pending until the next Sync plus
the prepared statements and portals the client keeps open.
"""

from __future__ import annotations

import re
from collections import deque

from replay.records import Record, Session, SessionEnd, Statement, encode_param, param_is_binary
from replay.wire import messages as m
from replay.wire.decoder import BackendDecoder, FrontendDecoder
from replay.wire.pending import (
    BIND,
    CLOSE,
    DESCRIBE,
    EXECUTE,
    FUNCTION,
    PARSE,
    QUERY,
    SYNC,
    Pending,
    Portal,
    Prepared,
    QueryPending,
    Result,
    add_note,
)
from replay.wire.redact import redact_sql
from replay.wire.split import split_statements

_DATA_ROW = m.B_DATA_ROW
_ASYNC = frozenset(
    {m.B_NOTICE, m.B_NOTIFICATION, m.B_PARAMETER_STATUS, m.B_BACKEND_KEY_DATA, m.SSL_ANSWER}
)
_ANSWERED_BY_READY = (SYNC, QUERY, FUNCTION)
_DEALLOCATE = re.compile(
    r'\s*deallocate\s+(?:prepare\s+)?(?:"((?:[^"]|"")*)"|(\S+?))\s*;?\s*$', re.I
)
_SECRET = "secret redacted"


class ConnectionTracker:
    """Protocol state of one connection, producing its records."""

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

    # -- client messages ---------------------------------------------------------------

    def _on_client(self, kind: int, body: bytes, ts: float) -> None:
        if kind >= m.STARTUP:
            self._on_startup_packet(kind, body)
            return
        if self._copy_in is not None:
            if kind == m.F_COPY_DATA:
                self._copy_in.add_copy(body)
                return
            if kind in (m.F_SYNC, m.F_FLUSH):
                # Ignored by the server during copy-in, for clients that pipelined them
                # without knowing the command was a COPY (Protocol 55.2.6).
                return
            self._copy_in = None
            if kind in (m.F_COPY_DONE, m.F_COPY_FAIL):
                return
        if self._copy_both:
            return
        if self._skipping:
            # After an error in the extended protocol the server discards everything
            # up to Sync (Protocol 55.2.3).
            if kind != m.F_SYNC:
                return
            self._skipping = False
        handler = self._client_handlers.get(kind)
        if handler is not None:
            handler(self, body, ts)

    def _on_startup_packet(self, kind: int, body: bytes) -> None:
        if kind == m.CANCEL_REQUEST:
            self._reason = "cancel request"
        elif kind == m.STARTUP:
            protocol, params = m.parse_startup(body)
            user = params.get("user", "")
            self._session = Session(
                id=self.session_id,
                start=self._start,
                client=self._client,
                user=user,
                database=params.get("database") or user,
                application_name=params.get("application_name", ""),
                parameters=params,
                protocol=protocol,
            )

    def _query(self, body: bytes, ts: float) -> None:
        sql, redacted = redact_sql(m.parse_query(body))
        item = QueryPending(ts, sql, split_statements(sql), redacted)
        item.result = self._query_result(item, ts)
        self._queue.append(item)

    def _parse(self, body: bytes, ts: float) -> None:
        name, sql, types = m.parse_parse(body)
        sql, redacted = redact_sql(sql)
        item = Pending(PARSE, ts)
        item.name = name
        item.previous = self._prepared.get(name)
        item.target = self._prepared[name] = Prepared(sql, types, _SECRET if redacted else "")
        self._queue.append(item)

    def _bind(self, body: bytes, ts: float) -> None:
        portal_name, name, formats, values, result_formats = m.parse_bind(body)
        params = [encode_param(v, param_is_binary(formats, i)) for i, v in enumerate(values)]
        portal = Portal(self._prepared.get(name), name, params, formats, result_formats)
        self._portals[portal_name] = portal
        item = Pending(BIND, ts)
        item.name = portal_name
        item.target = portal
        self._queue.append(item)

    def _describe(self, body: bytes, ts: float) -> None:
        kind, name = m.parse_target(body)
        item = Pending(DESCRIBE, ts)
        item.target = self._prepared.get(name) if kind == "S" else self._portals.get(name)
        self._queue.append(item)

    def _execute(self, body: bytes, ts: float) -> None:
        portal_name, max_rows = m.parse_execute(body)
        portal = self._portals.get(portal_name)
        statement = self._extended_statement(portal, portal_name, ts)
        statement.max_rows = max_rows
        item = Pending(EXECUTE, ts, Result(statement, self._digest_rows, self._copy_cap))
        item.target = portal
        self._queue.append(item)

    def _close(self, body: bytes, ts: float) -> None:
        kind, name = m.parse_target(body)
        item = Pending(CLOSE, ts)
        if kind == "S":
            item.name = name
            item.previous = self._prepared.pop(name, None)
        else:
            self._portals.pop(name, None)
        self._queue.append(item)

    def _sync(self, body: bytes, ts: float) -> None:
        self._queue.append(Pending(SYNC, ts))

    def _function_call(self, body: bytes, ts: float) -> None:
        oid = m.parse_function_call(body)
        statement = Statement(
            self.session_id,
            0,
            ts,
            f"-- function call oid {oid}",
            protocol="function",
            replayable=False,
        )
        self._queue.append(Pending(FUNCTION, ts, Result(statement, False, 0)))

    _client_handlers = {
        m.F_QUERY: _query,
        m.F_PARSE: _parse,
        m.F_BIND: _bind,
        m.F_DESCRIBE: _describe,
        m.F_EXECUTE: _execute,
        m.F_CLOSE: _close,
        m.F_SYNC: _sync,
        m.F_FUNCTION_CALL: _function_call,
    }

    def _query_result(self, item: QueryPending, ts: float) -> Result:
        statements, index = item.statements, item.index
        # One statement keeps the exact string the client sent; several are named by
        # their own text, with the whole string as the batch replay must send.
        sql = statements[index][0] if len(statements) > 1 and index < len(statements) else item.sql
        statement = Statement(self.session_id, 0, ts, sql, batch=item.batch, batch_index=index)
        if item.redacted:
            statement.replayable = False
            statement.note = _SECRET
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

    # -- server messages ---------------------------------------------------------------

    def _on_server(self, kind: int, body: bytes, ts: float) -> None:
        if kind == m.B_READY_FOR_QUERY:
            self._on_ready(body)
            return
        if kind in _ASYNC or kind == m.B_AUTHENTICATION:
            return
        if kind == m.B_NEGOTIATE_PROTOCOL:
            if self._session is not None:
                self._session.protocol = f"3.{m.parse_negotiate_protocol(body)}"
            return
        queue = self._queue
        if not queue:
            if kind != m.B_ERROR:  # errors can come unasked (FATAL at startup or idle)
                self._stop(f"server message {chr(kind)!r} answers no request", desync=True)
            return
        head = queue[0]
        if head.result is None and isinstance(head, QueryPending) and not head.failed:
            # More results than the split found statements: name them by the string.
            head.result = self._query_result(head, ts)
        if kind == m.B_ERROR:
            self._on_error(head, body, ts)
            return
        handler = self._server_handlers.get(kind)
        if handler is None:
            return
        if not handler(self, head, body, ts):
            self._stop(
                f"server message {chr(kind)!r} does not answer the pending request", desync=True
            )

    def _on_ready(self, body: bytes) -> None:
        queue = self._queue
        while queue:
            item = queue.popleft()
            if item.kind in _ANSWERED_BY_READY:
                break
            self._stop("ReadyForQuery before the answer to a request", desync=True)
            return
        status = chr(body[0]) if body else ""
        self._send_session()
        for statement in self._awaiting:
            statement.tx_status = status  # type: ignore[assignment]
        self._ready.extend(self._awaiting)
        self._awaiting = []
        self._copy_in = None
        self._copy_both = False
        if status == "I":
            # Portals live until the end of their transaction (Protocol 55.2.3).
            self._portals.clear()

    def _on_error(self, head: Pending, body: bytes, ts: float) -> None:
        fields = m.error_fields(body)
        info = m.error_info(fields)
        self._copy_in = None
        kind = head.kind
        if kind in (QUERY, FUNCTION):
            # A Query or FunctionCall ends with ReadyForQuery whatever happens; in a
            # Query the rest of the string is not executed (Protocol 55.2.2).
            if head.result is not None:
                if isinstance(head, QueryPending):
                    self._locate_parse_error(head, fields.get("P"))
                    head.failed = True
                self._emit(head.result.finish(ts, None, info))
                head.result = None
            return
        if kind == SYNC:
            return  # e.g. a deferred constraint failing at the implicit COMMIT
        self._queue.popleft()
        if kind == EXECUTE and head.result is not None:
            self._emit(self._with_columns(head).finish(ts, None, info))
        elif kind == PARSE and isinstance(head.target, Prepared):
            statement = Statement(
                self.session_id,
                0,
                head.ts,
                head.target.sql,
                protocol="extended",
                param_types=head.target.param_types,
                statement_name=head.name,
            )
            self._emit(Result(statement, False, 0).finish(ts, None, info))
        elif kind == BIND and isinstance(head.target, Portal):
            statement = self._extended_statement(head.target, head.name, head.ts)
            self._emit(Result(statement, False, 0).finish(ts, None, info))
        self._undo(head)
        self._discard_until_sync()

    def _locate_parse_error(self, item: QueryPending, position: str | None) -> None:
        """A syntax error anywhere fails the whole string before anything runs; its
        position (1-based, in characters) says which statement to blame."""
        if item.index or item.batch is None or item.redacted or not position:
            return
        if not position.isdigit():
            return
        offset = int(position) - 1
        for index, (text, start, end) in enumerate(item.statements):
            if start <= offset < end and index and item.result is not None:
                item.result.statement.sql = text
                item.result.statement.batch_index = index
                return

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

    def _answer_pop(self, head: Pending, expected: int) -> bool:
        if head.kind != expected:
            return False
        self._queue.popleft()
        return True

    def _parse_complete(self, head: Pending, body: bytes, ts: float) -> bool:
        return self._answer_pop(head, PARSE)

    def _bind_complete(self, head: Pending, body: bytes, ts: float) -> bool:
        return self._answer_pop(head, BIND)

    def _close_complete(self, head: Pending, body: bytes, ts: float) -> bool:
        return self._answer_pop(head, CLOSE)

    def _parameter_description(self, head: Pending, body: bytes, ts: float) -> bool:
        return head.kind == DESCRIBE  # the RowDescription or NoData follows

    def _row_description(self, head: Pending, body: bytes, ts: float) -> bool:
        columns = m.parse_row_description(body)
        if head.kind == DESCRIBE:
            if head.target is not None:
                head.target.columns = columns
            self._queue.popleft()
            return True
        if head.result is None:
            return False
        head.result.statement.columns = columns
        head.result.has_rows = True  # a result set, even if it has no rows
        return True

    def _no_data(self, head: Pending, body: bytes, ts: float) -> bool:
        if head.kind != DESCRIBE:
            return False
        if head.target is not None:
            head.target.columns = []
        self._queue.popleft()
        return True

    def _command_complete(self, head: Pending, body: bytes, ts: float) -> bool:
        return self._complete(head, ts, m.parse_command_complete(body))

    def _empty_query(self, head: Pending, body: bytes, ts: float) -> bool:
        return self._complete(head, ts, None, "empty query")

    def _portal_suspended(self, head: Pending, body: bytes, ts: float) -> bool:
        return head.kind == EXECUTE and self._complete(head, ts, None, "suspended")

    def _complete(self, head: Pending, ts: float, tag: str | None, note: str = "") -> bool:
        if head.kind == EXECUTE:
            self._queue.popleft()
            self._emit(self._with_columns(head).finish(ts, tag, None, note))
            self._copy_in = None
            return True
        if not isinstance(head, QueryPending) or head.result is None:
            return False
        self._emit(head.result.finish(ts, tag, None, note))
        self._copy_in = None
        if tag is not None:
            self._track_deallocate(head, tag)
        head.index += 1
        head.result = None
        if head.index < len(head.statements):
            head.result = self._query_result(head, ts)
        return True

    def _track_deallocate(self, item: QueryPending, tag: str) -> None:
        """SQL-level DEALLOCATE and DISCARD ALL drop protocol-level prepared statements
        too: both live in one namespace per session."""
        if tag in ("DEALLOCATE ALL", "DISCARD ALL"):
            self._prepared.clear()
        elif tag == "DEALLOCATE" and item.result is not None:
            found = _DEALLOCATE.match(item.result.statement.sql)
            if found:
                quoted, bare = found.groups()
                name = quoted.replace('""', '"') if quoted is not None else bare.lower()
                self._prepared.pop(name, None)

    def _function_result(self, head: Pending, body: bytes, ts: float) -> bool:
        if head.kind != FUNCTION or head.result is None:
            return False
        self._emit(head.result.finish(ts, None))
        head.result = None
        return True

    def _copy_in_response(self, head: Pending, body: bytes, ts: float) -> bool:
        if head.result is None:
            return False
        self._copy_in = head.result
        if head.kind == EXECUTE:
            # A Sync pipelined behind the Execute is read during copy-in and ignored;
            # the client sends another after CopyDone (Protocol 55.2.6, libpq does).
            queue = self._queue
            while len(queue) > 1 and queue[1].kind == SYNC:
                del queue[1]
        return True

    def _copy_out_response(self, head: Pending, body: bytes, ts: float) -> bool:
        if head.result is None:
            return False
        head.result.has_rows = True
        return True

    def _copy_both_response(self, head: Pending, body: bytes, ts: float) -> bool:
        if head.result is None:
            return False
        self._copy_both = True
        head.result.statement.replayable = False
        add_note(head.result.statement, "copy both")
        return True

    def _copy_data(self, head: Pending, body: bytes, ts: float) -> bool:
        # COPY TO STDOUT rows are hashed like DataRows so the two compare.
        if head.result is not None and not self._copy_both:
            head.result.row(body)
        return True

    def _ignore(self, head: Pending, body: bytes, ts: float) -> bool:
        return True

    _server_handlers = {
        m.B_PARSE_COMPLETE: _parse_complete,
        m.B_BIND_COMPLETE: _bind_complete,
        m.B_CLOSE_COMPLETE: _close_complete,
        m.B_PARAMETER_DESCRIPTION: _parameter_description,
        m.B_ROW_DESCRIPTION: _row_description,
        m.B_NO_DATA: _no_data,
        m.B_COMMAND_COMPLETE: _command_complete,
        m.B_EMPTY_QUERY: _empty_query,
        m.B_PORTAL_SUSPENDED: _portal_suspended,
        m.B_FUNCTION_RESULT: _function_result,
        m.B_COPY_IN: _copy_in_response,
        m.B_COPY_OUT: _copy_out_response,
        m.B_COPY_BOTH: _copy_both_response,
        m.B_COPY_DATA: _copy_data,
        m.B_COPY_DONE: _ignore,
    }
