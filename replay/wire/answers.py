"""Server messages: each answer completes the request at the head of the queue.

Statements are completed here (CommandComplete, PortalSuspended, EmptyQueryResponse,
ErrorResponse) and released at the ReadyForQuery that follows, with its transaction
status. :class:`AnswerHandler` keeps no state of its own: it reads and changes the
connection's :class:`~replay.wire.state.ProtocolState`.
"""

from __future__ import annotations

from replay.model.records import Statement
from replay.sql.commands import commands
from replay.wire import messages as m
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
from replay.wire.state import ProtocolState

# Messages that answer no request: asynchronous ones (Protocol 55.2.7), the startup's.
_ASYNC = (m.B_NOTICE, m.B_NOTIFICATION, m.B_PARAMETER_STATUS, m.B_BACKEND_KEY_DATA)
_UNASKED = frozenset((*_ASYNC, m.SSL_ANSWER, m.B_AUTHENTICATION))
# Module constants as globals: one lookup less per server message.
_READY = m.B_READY_FOR_QUERY
_ERROR = m.B_ERROR
_NEGOTIATE = m.B_NEGOTIATE_PROTOCOL
_ANSWERED_BY_READY = (SYNC, QUERY, FUNCTION)


def _with_columns(item: Pending) -> Result:
    """The Execute's Result, with the columns its portal was described with."""
    result = item.result
    assert result is not None
    if isinstance(item.target, Portal):
        result.statement.columns = list(item.target.result_columns())
    return result


class AnswerHandler:
    """What the tracker does with each server message."""

    __slots__ = ("state",)

    def __init__(self, state: ProtocolState) -> None:
        self.state = state

    def on_server(self, kind: int, body: bytes, ts: float) -> None:
        if kind == _READY:
            self._on_ready(body)
            return
        if kind in _UNASKED:
            return
        state = self.state
        if kind == _NEGOTIATE:
            if state.session is not None:
                state.session.protocol = f"3.{m.parse_negotiate_protocol(body)}"
            return
        queue = state.queue
        if not queue:
            if kind != _ERROR:  # errors can come unasked (FATAL at startup or idle)
                state.stop(f"server message {chr(kind)!r} answers no request", desync=True)
            return
        head = queue[0]
        if head.result is None and isinstance(head, QueryPending) and not head.failed:
            # More results than the split found statements: name them by the string.
            head.result = state.query_result(head, ts)
        if kind == _ERROR:
            self._on_error(head, body, ts)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            return
        if not handler(self, head, body, ts):
            state.stop(
                f"server message {chr(kind)!r} does not answer the pending request", desync=True
            )

    def _on_ready(self, body: bytes) -> None:
        state = self.state
        queue = state.queue
        while queue:
            item = queue.popleft()
            if item.kind in _ANSWERED_BY_READY:
                break
            state.stop("ReadyForQuery before the answer to a request", desync=True)
            return
        status = chr(body[0]) if body else ""
        state.release(status)
        state.copy_in = None
        state.copy_both = False
        if status == "I":
            # Portals live until the end of their transaction (Protocol 55.2.3).
            state.portals.clear()

    def _on_error(self, head: Pending, body: bytes, ts: float) -> None:
        state = self.state
        fields = m.error_fields(body)
        info = m.error_info(fields)
        state.copy_in = None
        kind = head.kind
        if kind in (QUERY, FUNCTION):
            # A Query or FunctionCall ends with ReadyForQuery whatever happens; in a
            # Query the rest of the string is not executed (Protocol 55.2.2).
            if head.result is not None:
                if isinstance(head, QueryPending):
                    _locate_parse_error(head, fields.get("P"))
                    head.failed = True
                state.emit(head.result.finish(ts, None, info))
                head.result = None
            return
        if kind == SYNC:
            return  # e.g. a deferred constraint failing at the implicit COMMIT
        state.queue.popleft()
        if kind == EXECUTE and head.result is not None:
            state.emit(_with_columns(head).finish(ts, None, info))
        elif kind == PARSE and isinstance(head.target, Prepared):
            statement = Statement(
                state.session_id,
                0,
                head.ts,
                head.target.sql,
                protocol="extended",
                param_types=head.target.param_types,
                statement_name=head.name,
            )
            state.emit(Result(statement, False, 0).finish(ts, None, info))
        elif kind == BIND and isinstance(head.target, Portal):
            statement = state.extended_statement(head.target, head.name, head.ts)
            state.emit(Result(statement, False, 0).finish(ts, None, info))
        state.undo(head)
        state.discard_until_sync()

    def _answer_pop(self, head: Pending, expected: int) -> bool:
        if head.kind != expected:
            return False
        self.state.queue.popleft()
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
            self.state.queue.popleft()
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
        self.state.queue.popleft()
        return True

    def _command_complete(self, head: Pending, body: bytes, ts: float) -> bool:
        return self._complete(head, ts, m.parse_command_complete(body))

    def _empty_query(self, head: Pending, body: bytes, ts: float) -> bool:
        return self._complete(head, ts, None, "empty query")

    def _portal_suspended(self, head: Pending, body: bytes, ts: float) -> bool:
        return head.kind == EXECUTE and self._complete(head, ts, None, "suspended")

    def _complete(self, head: Pending, ts: float, tag: str | None, note: str = "") -> bool:
        state = self.state
        if head.kind == EXECUTE:
            state.queue.popleft()
            state.emit(_with_columns(head).finish(ts, tag, None, note))
            state.copy_in = None
            return True
        if not isinstance(head, QueryPending) or head.result is None:
            return False
        state.emit(head.result.finish(ts, tag, None, note))
        state.copy_in = None
        if tag is not None:
            self._track_deallocate(head, tag)
        head.index += 1
        head.result = None
        if head.index < len(head.statements):
            head.result = state.query_result(head, ts)
        return True

    def _track_deallocate(self, item: QueryPending, tag: str) -> None:
        """SQL-level DEALLOCATE and DISCARD ALL drop protocol-level prepared statements
        too: both live in one namespace per session."""
        if tag in ("DEALLOCATE ALL", "DISCARD ALL"):
            self.state.prepared.clear()
        elif tag == "DEALLOCATE" and item.result is not None:
            for name in commands(item.result.statement.sql).deallocates:
                self.state.prepared.pop(name, None)

    def _function_result(self, head: Pending, body: bytes, ts: float) -> bool:
        if head.kind != FUNCTION or head.result is None:
            return False
        self.state.emit(head.result.finish(ts, None))
        head.result = None
        return True

    def _copy_in_response(self, head: Pending, body: bytes, ts: float) -> bool:
        if head.result is None:
            return False
        self.state.copy_in = head.result
        if head.kind == EXECUTE:
            # A Sync pipelined behind the Execute is read during copy-in and ignored;
            # the client sends another after CopyDone (Protocol 55.2.6, libpq does).
            queue = self.state.queue
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
        self.state.copy_both = True
        head.result.statement.replayable = False
        add_note(head.result.statement, "copy both")
        return True

    def _copy_data(self, head: Pending, body: bytes, ts: float) -> bool:
        # COPY TO STDOUT rows are hashed like DataRows so the two compare.
        if head.result is not None and not self.state.copy_both:
            head.result.row(body)
        return True

    def _ignore(self, head: Pending, body: bytes, ts: float) -> bool:
        return True

    # By message type; called unbound, as handler(self, head, body, ts), to spare a lookup.
    _handlers = {
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


def _locate_parse_error(item: QueryPending, position: str | None) -> None:
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
