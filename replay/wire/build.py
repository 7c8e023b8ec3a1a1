"""The encoder of PostgreSQL v3 messages, the inverse of :mod:`replay.wire.messages`.

The one place that lays out message bytes (PostgreSQL docs, Protocol 55.7): the replay
builds its requests with it (:mod:`replay.engine.encode`), the tests (ours and the
capture addon's) write the byte streams a real client or server would send. Pure.
Text is encoded as UTF-8 with ``surrogateescape``, so that SQL read from a capture
(where bytes that are not UTF-8 were kept as surrogates) goes out as it came in.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from replay.wire import messages as m

_LENGTH = struct.Struct("!I")
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_NULL = _INT32.pack(-1)


def message(typ: bytes, body: bytes = b"") -> bytes:
    return typ + _LENGTH.pack(len(body) + 4) + body


def encode(text: str) -> bytes:
    """SQL text or a name as the bytes a client sends."""
    return text.encode("utf-8", "surrogateescape")


def _cstr(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape") + b"\0"  # encode(), inlined: per statement


def _int16s(values: Sequence[int]) -> bytes:
    return _INT16.pack(len(values)) + b"".join([_INT16.pack(v) for v in values])


def values(params: Sequence[bytes | None]) -> bytes:
    """An int16 count, then each value as an int32 length (-1: NULL) and its bytes, as
    Bind, DataRow and FunctionCall hold them."""
    parts = [_INT16.pack(len(params))]
    for value in params:
        parts.append(_NULL if value is None else _INT32.pack(len(value)) + value)
    return b"".join(parts)


# -- startup packets (no type byte) --------------------------------------------------


def startup(params: dict[str, str], minor: int = 0) -> bytes:
    body = struct.pack("!i", (3 << 16) | minor)
    body += b"".join(_cstr(k) + _cstr(v) for k, v in params.items()) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def ssl_request() -> bytes:
    return struct.pack("!ii", 8, m.SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return struct.pack("!ii", 8, m.GSSENC_REQUEST_CODE)


def cancel_request(pid: int, key: bytes) -> bytes:
    body = struct.pack("!ii", m.CANCEL_REQUEST_CODE, pid) + key
    return struct.pack("!i", len(body) + 4) + body


# -- frontend ------------------------------------------------------------------------


def query(sql: str) -> bytes:
    return message(b"Q", _cstr(sql))


def parse(sql: str, name: str = "", types: Sequence[int] = ()) -> bytes:
    # OIDs are unsigned; a captured negative value is the same 32 bits.
    oids = b"".join([_LENGTH.pack(t & 0xFFFFFFFF) for t in types])
    return message(b"P", _cstr(name) + _cstr(sql) + _INT16.pack(len(types)) + oids)


def bind(
    params: Sequence[bytes | None] = (),
    *,
    portal: str = "",
    statement: str = "",
    formats: Sequence[int] = (),
    result_formats: Sequence[int] = (),
) -> bytes:
    body = _cstr(portal) + _cstr(statement) + _int16s(formats)
    return message(b"B", body + values(params) + _int16s(result_formats))


def describe(kind: str = "P", name: str = "") -> bytes:
    return message(b"D", kind.encode() + _cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return message(b"E", _cstr(portal) + _INT32.pack(max_rows))


def close(kind: str = "S", name: str = "") -> bytes:
    return message(b"C", kind.encode() + _cstr(name))


def sync() -> bytes:
    return message(b"S")


def flush() -> bytes:
    return message(b"H")


def terminate() -> bytes:
    return message(b"X")


def copy_data(data: bytes) -> bytes:
    return message(b"d", data)


def copy_done() -> bytes:
    return message(b"c")


def copy_fail(reason: str) -> bytes:
    return message(b"f", _cstr(reason))


def password(secret: str) -> bytes:
    return message(b"p", _cstr(secret))


def function_call(oid: int, args: Sequence[bytes | None] = ()) -> bytes:
    return message(b"F", struct.pack("!Ih", oid, 0) + values(args) + struct.pack("!h", 0))


# -- backend -------------------------------------------------------------------------


def auth(code: int = 0, extra: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + extra)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", _cstr(name) + _cstr(value))


def backend_key_data(pid: int, key: bytes) -> bytes:
    return message(b"K", struct.pack("!i", pid) + key)


def negotiate_protocol(minor: int, unknown: Sequence[str] = ()) -> bytes:
    body = struct.pack("!ii", minor, len(unknown)) + b"".join(_cstr(u) for u in unknown)
    return message(b"v", body)


def ready(status: str = "I") -> bytes:
    return message(b"Z", status.encode())


def row_description(columns: Iterable[tuple[str, int]], formats: Sequence[int] = ()) -> bytes:
    """Columns as (name, type OID); ``formats``: each column's, text (0) where not given."""
    cols = list(columns)
    body = struct.pack("!h", len(cols))
    for index, (name, oid) in enumerate(cols):
        fmt = formats[index] if index < len(formats) else 0
        body += _cstr(name) + struct.pack("!IhIhih", 0, 0, oid, -1, -1, fmt)
    return message(b"T", body)


def data_row(row: Sequence[bytes | None]) -> bytes:
    return message(b"D", values(row))


def command_complete(tag: str) -> bytes:
    return message(b"C", _cstr(tag))


def empty_query() -> bytes:
    return message(b"I")


def error(sqlstate: str, text: str, severity: str = "ERROR", position: int | None = None) -> bytes:
    body = b"S" + _cstr(severity) + b"V" + _cstr(severity) + b"C" + _cstr(sqlstate)
    body += b"M" + _cstr(text)
    if position is not None:
        body += b"P" + _cstr(str(position))
    return message(b"E", body + b"\0")


def notice(text: str) -> bytes:
    return message(b"N", b"SNOTICE\0VNOTICE\0C00000\0M" + _cstr(text) + b"\0")


def notification(pid: int, channel: str, payload: str) -> bytes:
    return message(b"A", struct.pack("!i", pid) + _cstr(channel) + _cstr(payload))


def parse_complete() -> bytes:
    return message(b"1")


def bind_complete() -> bytes:
    return message(b"2")


def close_complete() -> bytes:
    return message(b"3")


def no_data() -> bytes:
    return message(b"n")


def portal_suspended() -> bytes:
    return message(b"s")


def parameter_description(types: Sequence[int]) -> bytes:
    return message(b"t", struct.pack(f"!h{len(types)}I", len(types), *types))


def _copy_response(typ: bytes, columns: int) -> bytes:
    return message(typ, struct.pack(f"!bh{columns}h", 0, columns, *([0] * columns)))


def copy_in_response(columns: int = 1) -> bytes:
    return _copy_response(b"G", columns)


def copy_out_response(columns: int = 1) -> bytes:
    return _copy_response(b"H", columns)


def function_result(value: bytes | None) -> bytes:
    if value is None:
        return message(b"V", struct.pack("!i", -1))
    return message(b"V", struct.pack("!i", len(value)) + value)
