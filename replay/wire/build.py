"""Builders for PostgreSQL v3 messages, the inverse of :mod:`replay.wire.messages`.

Used by tests (ours and the capture addon's) to write byte streams that a real client
or server would send, without a server. Layouts: PostgreSQL docs, Protocol 55.7.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from replay.wire import messages as m
from replay.wire.digest import encode_row


def message(typ: bytes, body: bytes = b"") -> bytes:
    return typ + struct.pack("!I", len(body) + 4) + body


def _cstr(text: str) -> bytes:
    return text.encode() + b"\0"


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
    body = _cstr(name) + _cstr(sql) + struct.pack(f"!h{len(types)}I", len(types), *types)
    return message(b"P", body)


def bind(
    params: Sequence[bytes | None] = (),
    *,
    portal: str = "",
    statement: str = "",
    formats: Sequence[int] = (),
    result_formats: Sequence[int] = (),
) -> bytes:
    body = _cstr(portal) + _cstr(statement)
    body += struct.pack(f"!h{len(formats)}h", len(formats), *formats)
    body += struct.pack("!h", len(params))
    for value in params:
        body += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    body += struct.pack(f"!h{len(result_formats)}h", len(result_formats), *result_formats)
    return message(b"B", body)


def describe(kind: str = "P", name: str = "") -> bytes:
    return message(b"D", kind.encode() + _cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return message(b"E", _cstr(portal) + struct.pack("!i", max_rows))


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
    body = struct.pack("!Ih", oid, 0) + struct.pack("!h", len(args))
    for value in args:
        body += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    return message(b"F", body + struct.pack("!h", 0))


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


def row_description(columns: Iterable[tuple[str, int]]) -> bytes:
    cols = list(columns)
    body = struct.pack("!h", len(cols))
    for name, oid in cols:
        body += _cstr(name) + struct.pack("!IhIhih", 0, 0, oid, -1, -1, 0)
    return message(b"T", body)


def data_row(values: Sequence[bytes | None]) -> bytes:
    return message(b"D", encode_row(values))


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
