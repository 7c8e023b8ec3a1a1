"""Client messages: each request that expects an answer joins the queue.

Named objects (prepared statements, portals) are updated as the client sends, since
later pipelined messages refer to them before the server answers; when the server
skips a message after an error, :meth:`ProtocolState.undo` puts the names back.
:class:`RequestHandler` keeps no state of its own: it reads and changes the
connection's :class:`~replay.wire.state.ProtocolState`.
"""

from __future__ import annotations

from replay.model.records import Session, Statement, encode_param, param_is_binary
from replay.sql.redact import redact_sql
from replay.sql.split import split_statements
from replay.wire import messages as m
from replay.wire.pending import (
    BIND,
    CLOSE,
    DESCRIBE,
    EXECUTE,
    FUNCTION,
    PARSE,
    SYNC,
    Pending,
    Portal,
    Prepared,
    QueryPending,
    Result,
)
from replay.wire.state import SECRET_NOTE, ProtocolState

_STARTUP = m.STARTUP  # a global: one lookup less per client message


class RequestHandler:
    """What the tracker does with each client message."""

    __slots__ = ("state",)

    def __init__(self, state: ProtocolState) -> None:
        self.state = state

    def on_client(self, kind: int, body: bytes, ts: float) -> None:
        if kind >= _STARTUP:
            self._on_startup_packet(kind, body)
            return
        state = self.state
        copy_in = state.copy_in
        if copy_in is not None:
            if kind == m.F_COPY_DATA:
                copy_in.add_copy(body)
                return
            if kind in (m.F_SYNC, m.F_FLUSH):
                # Ignored by the server during copy-in, for clients that pipelined them
                # without knowing the command was a COPY (Protocol 55.2.6).
                return
            state.copy_in = None
            if kind in (m.F_COPY_DONE, m.F_COPY_FAIL):
                return
        if state.copy_both:
            return
        if state.skipping:
            # After an error in the extended protocol the server discards everything
            # up to Sync (Protocol 55.2.3).
            if kind != m.F_SYNC:
                return
            state.skipping = False
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(self, body, ts)

    def _on_startup_packet(self, kind: int, body: bytes) -> None:
        state = self.state
        if kind == m.CANCEL_REQUEST:
            state.reason = "cancel request"
        elif kind == m.STARTUP:
            protocol, params = m.parse_startup(body)
            user = params.get("user", "")
            state.session = Session(
                id=state.session_id,
                start=state.start,
                client=state.client,
                user=user,
                database=params.get("database") or user,
                application_name=params.get("application_name", ""),
                parameters=params,
                protocol=protocol,
            )

    def _query(self, body: bytes, ts: float) -> None:
        state = self.state
        sql, redacted = redact_sql(m.parse_query(body))
        item = QueryPending(ts, sql, split_statements(sql), redacted)
        item.result = state.query_result(item, ts)
        state.queue.append(item)

    def _parse(self, body: bytes, ts: float) -> None:
        state = self.state
        name, sql, types = m.parse_parse(body)
        sql, redacted = redact_sql(sql)
        item = Pending(PARSE, ts)
        item.name = name
        prepared = state.prepared
        item.previous = prepared.get(name)
        item.target = prepared[name] = Prepared(sql, types, SECRET_NOTE if redacted else "")
        state.queue.append(item)

    def _bind(self, body: bytes, ts: float) -> None:
        state = self.state
        portal_name, name, formats, values, result_formats = m.parse_bind(body)
        params = [encode_param(v, param_is_binary(formats, i)) for i, v in enumerate(values)]
        portal = Portal(state.prepared.get(name), name, params, formats, result_formats)
        state.portals[portal_name] = portal
        item = Pending(BIND, ts)
        item.name = portal_name
        item.target = portal
        state.queue.append(item)

    def _describe(self, body: bytes, ts: float) -> None:
        state = self.state
        kind, name = m.parse_target(body)
        item = Pending(DESCRIBE, ts)
        item.target = state.prepared.get(name) if kind == "S" else state.portals.get(name)
        state.queue.append(item)

    def _execute(self, body: bytes, ts: float) -> None:
        state = self.state
        portal_name, max_rows = m.parse_execute(body)
        portal = state.portals.get(portal_name)
        statement = state.extended_statement(portal, portal_name, ts)
        statement.max_rows = max_rows
        item = Pending(EXECUTE, ts, Result(statement, state.digest_rows, state.copy_cap))
        item.target = portal
        state.queue.append(item)

    def _close(self, body: bytes, ts: float) -> None:
        state = self.state
        kind, name = m.parse_target(body)
        item = Pending(CLOSE, ts)
        if kind == "S":
            item.name = name
            item.previous = state.prepared.pop(name, None)
        else:
            state.portals.pop(name, None)
        state.queue.append(item)

    def _sync(self, body: bytes, ts: float) -> None:
        self.state.queue.append(Pending(SYNC, ts))

    def _function_call(self, body: bytes, ts: float) -> None:
        state = self.state
        oid = m.parse_function_call(body)
        statement = Statement(
            state.session_id,
            0,
            ts,
            f"-- function call oid {oid}",
            protocol="function",
            replayable=False,
        )
        state.queue.append(Pending(FUNCTION, ts, Result(statement, False, 0)))

    # By message type; called unbound, as handler(self, body, ts), to spare a lookup.
    _handlers = {
        m.F_QUERY: _query,
        m.F_PARSE: _parse,
        m.F_BIND: _bind,
        m.F_DESCRIBE: _describe,
        m.F_EXECUTE: _execute,
        m.F_CLOSE: _close,
        m.F_SYNC: _sync,
        m.F_FUNCTION_CALL: _function_call,
    }
