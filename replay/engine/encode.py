"""How the pipelined connection writes one captured statement: its request's bytes.

The same exchanges libpq makes for :mod:`replay.engine.plan`, built directly
(PostgreSQL docs 55.7): the simple protocol is one Query; the extended protocol is
Parse, Bind (the captured parameter bytes, type OIDs and formats, and the captured
result formats column by column), Describe, Execute and Sync. A named statement is
prepared on first use with a Close ahead of its Parse (closing a name that does not
exist is not an error), so that a name left prepared by a half-failed request cannot
make the next Parse fail.

A request is *exclusive* (nothing else in flight with it, either side) when what
follows depends on its answer: a Parse (whether the name is now prepared), a COPY
(its data must follow its CopyInResponse before any other message), DEALLOCATE and
DISCARD (the map of prepared names).
"""

from __future__ import annotations

import re
from struct import Struct
from typing import NamedTuple

from replay.engine.plan import Prepared, encode
from replay.engine.responses import Request
from replay.model.records import Statement, param_is_binary

_LENGTH = Struct("!I")
_INT16 = Struct("!h")
_INT32 = Struct("!i")
_NULL = _INT32.pack(-1)
_DESCRIBE_EXECUTE_SYNC = (
    (b"D" + _LENGTH.pack(6) + b"P\0" + b"E" + _LENGTH.pack(9) + b"\0" + _INT32.pack(0))
    + b"S"
    + _LENGTH.pack(4)
)
_SYNC = b"S" + _LENGTH.pack(4)
_EXCLUSIVE = re.compile(r"\bcopy\b|^\s*(?:deallocate|discard)\b", re.I)


def exclusive_sql(text: str) -> bool:
    """Whether SQL ``text`` makes its request exclusive (COPY, DEALLOCATE, DISCARD)."""
    # A case-insensitive regex over every statement's text cost more than building its
    # request: most texts hold none of the words, which a plain search tells at once.
    lowered = text.lower()
    if "copy" not in lowered and "deallocate" not in lowered and "discard" not in lowered:
        return False
    return _EXCLUSIVE.search(text) is not None


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + _LENGTH.pack(len(body) + 4) + body


def query(text: str) -> bytes:
    return _message(b"Q", encode(text) + b"\0")


def _int16s(values: list[int]) -> bytes:
    return _INT16.pack(len(values)) + b"".join(_INT16.pack(v) for v in values)


def _parse(name: bytes, sql: bytes, types: list[int]) -> bytes:
    body = name + b"\0" + sql + b"\0" + _INT16.pack(len(types))
    body += b"".join(_LENGTH.pack(t & 0xFFFFFFFF) for t in types)
    return _message(b"P", body)


def _bind(name: bytes, statement: Statement, values: list[bytes | None]) -> bytes:
    formats = [int(param_is_binary(statement.param_formats, i)) for i in range(len(values))]
    parts = [b"\0", name, b"\0", _int16s(formats), _INT16.pack(len(values))]
    for value in values:
        parts.append(_NULL if value is None else _INT32.pack(len(value)) + value)
    parts.append(_int16s(list(statement.result_formats)))
    return _message(b"B", b"".join(parts))


def copy_in(data: bytes | None, extended: bool) -> bytes:
    """The answer to a CopyInResponse: the captured data, CopyDone, and for a COPY sent
    in the extended protocol the Sync that libpq sends after it too."""
    out = _message(b"d", data) if data else b""
    out += _message(b"c", b"")
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
        return Wire(query(text), text, False, exclusive_sql(text))
    if statement.statement_name:
        return None
    values = statement.param_bytes()
    declared = list(statement.param_types)
    types = (declared + [0] * len(values))[: len(values)]
    data = _parse(b"", encode(statement.sql), types) + _bind(b"", statement, values)
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
    sql = encode(statement.sql)
    values = statement.param_bytes()
    declared = list(statement.param_types)
    name = statement.statement_name
    exclusive = exclusive_sql(statement.sql)
    key = (statement.sql, tuple(declared))
    bname = encode(name)
    data = _bind(bname, statement, values) + _DESCRIBE_EXECUTE_SYNC
    prepares = None
    if prepared.get(name) != key:
        close = _message(b"C", b"S" + bname + b"\0")
        data = close + _parse(bname, sql, declared) + data
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
