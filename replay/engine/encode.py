"""How the pipelined connection writes one captured statement: its request's bytes.

The same exchanges libpq makes for :mod:`replay.engine.plan`, laid out by the one
encoder of v3 messages, :mod:`replay.wire.build` (PostgreSQL docs 55.7): the simple
protocol is one Query; the extended protocol is Parse, Bind (the captured parameter
bytes, type OIDs and formats, and the captured result formats column by column),
Describe, Execute and Sync. A named statement is prepared on first use with a Close
ahead of its Parse (closing a name that does not exist is not an error), so that a name
left prepared by a half-failed request cannot make the next Parse fail.

A request is *exclusive* (nothing else in flight with it, either side) when what
follows depends on its answer: a Parse (whether the name is now prepared), and the
commands :attr:`replay.sql.commands.Commands.alone` names (a COPY's data must follow
its CopyInResponse before any other message; DEALLOCATE and DISCARD ALL change the map
of prepared names).
"""

from __future__ import annotations

from typing import NamedTuple

from replay.engine.plan import Prepared
from replay.engine.responses import Request
from replay.model.records import Statement, param_is_binary
from replay.sql.commands import alone
from replay.wire import build

# The tail of every extended request: the same bytes each time, built once.
_DESCRIBE_EXECUTE_SYNC = build.describe("P") + build.execute() + build.sync()
_SYNC = build.sync()
_COPY_DONE = build.copy_done()


def exclusive_sql(text: str) -> bool:
    """Whether SQL ``text`` makes its request exclusive (see the module's docstring)."""
    return alone(text)


def _bind(statement: Statement, values: list[bytes | None]) -> bytes:
    formats = [int(param_is_binary(statement.param_formats, i)) for i in range(len(values))]
    return build.bind(
        values,
        statement=statement.statement_name,
        formats=formats,
        result_formats=statement.result_formats,
    )


def copy_in(data: bytes | None, extended: bool) -> bytes:
    """The answer to a CopyInResponse: the captured data, CopyDone, and for a COPY sent
    in the extended protocol the Sync that libpq sends after it too."""
    out = build.copy_data(data) + _COPY_DONE if data else _COPY_DONE
    return out + _SYNC if extended else out


class Wire(NamedTuple):
    """A request's bytes that do not depend on the connection: built once per statement
    and sent to every target (all but executions of named statements)."""

    data: bytes
    sql: str
    extended: bool
    exclusive: bool


def wire(statement: Statement) -> Wire | None:
    """The bytes every target gets for ``statement``; None for a named statement's
    execution, whose bytes depend on what the connection has prepared."""
    if statement.protocol == "simple":
        text = statement.batch if statement.batch is not None else statement.sql
        return Wire(build.query(text), text, False, exclusive_sql(text))
    if statement.statement_name:
        return None
    values = statement.param_bytes()
    declared = list(statement.param_types)
    types = (declared + [0] * len(values))[: len(values)]
    data = build.parse(statement.sql, "", types) + _bind(statement, values)
    exclusive = exclusive_sql(statement.sql)
    return Wire(data + _DESCRIBE_EXECUTE_SYNC, statement.sql, True, exclusive)


def request(statement: Statement, prepared: Prepared, shared: Wire | None = None) -> Request:
    """The request that sends ``statement``, given the names prepared on the connection
    (and the statement's :func:`wire`, when already built)."""
    if shared is None and not statement.statement_name:
        shared = wire(statement)
    if shared is not None:
        copy = statement.copy_bytes() if statement.copy_data is not None else None
        return Request(
            shared.data,
            sql=shared.sql,
            copy_in=copy,
            extended=shared.extended,
            exclusive=shared.exclusive,
        )
    values = statement.param_bytes()
    declared = list(statement.param_types)
    name = statement.statement_name
    exclusive = exclusive_sql(statement.sql)
    key = (statement.sql, tuple(declared))
    data = _bind(statement, values) + _DESCRIBE_EXECUTE_SYNC
    prepares = None
    if prepared.get(name) != key:
        data = build.close("S", name) + build.parse(statement.sql, name, declared) + data
        prepares = (name, key)
        exclusive = True
    return Request(
        data,
        sql=statement.sql,
        copy_in=statement.copy_bytes(),
        extended=True,
        prepares=prepares,
        exclusive=exclusive,
    )
