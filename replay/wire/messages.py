"""PostgreSQL v3 message codes and parsers for the message bodies the tracker reads.

The decoders (:mod:`replay.wire.decoder`) only frame messages: they hand out
``(kind, body)`` pairs where ``kind`` is the type byte as an int, or one of the
``STARTUP_*``/``SSL_ANSWER`` pseudo kinds (above 255) for the untyped packets of the
startup phase. The functions here read the few bodies the tracker needs; they raise
``ValueError`` (or ``struct.error``/``IndexError``) on a malformed body, which the
tracker turns into a desynchronized connection.

Layouts follow the PostgreSQL docs, "Protocol / Message Formats" (55.7 in PostgreSQL 17).
"""

from __future__ import annotations

import struct

from replay.model.records import ErrorInfo

Message = tuple[int, bytes]

# Pseudo kinds for the untyped startup packets (Protocol 55.2.1 / 55.7, StartupMessage).
STARTUP = 256
SSL_REQUEST = 257
GSSENC_REQUEST = 258
CANCEL_REQUEST = 259
# The server's one-byte answer to SSLRequest/GSSENCRequest; body is b"N", b"S" or b"G".
SSL_ANSWER = 260

# Request codes carried where a StartupMessage carries its protocol version.
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

# Frontend type bytes.
F_QUERY = ord("Q")
F_PARSE = ord("P")
F_BIND = ord("B")
F_DESCRIBE = ord("D")
F_EXECUTE = ord("E")
F_CLOSE = ord("C")
F_SYNC = ord("S")
F_FLUSH = ord("H")
F_COPY_DATA = ord("d")
F_COPY_DONE = ord("c")
F_COPY_FAIL = ord("f")
F_FUNCTION_CALL = ord("F")
F_TERMINATE = ord("X")
F_PASSWORD = ord("p")  # PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse

# Backend type bytes.
B_AUTHENTICATION = ord("R")
B_PARAMETER_STATUS = ord("S")
B_BACKEND_KEY_DATA = ord("K")
B_NEGOTIATE_PROTOCOL = ord("v")
B_READY_FOR_QUERY = ord("Z")
B_ROW_DESCRIPTION = ord("T")
B_DATA_ROW = ord("D")
B_COMMAND_COMPLETE = ord("C")
B_EMPTY_QUERY = ord("I")
B_ERROR = ord("E")
B_NOTICE = ord("N")
B_NOTIFICATION = ord("A")
B_PARSE_COMPLETE = ord("1")
B_BIND_COMPLETE = ord("2")
B_CLOSE_COMPLETE = ord("3")
B_NO_DATA = ord("n")
B_PORTAL_SUSPENDED = ord("s")
B_PARAMETER_DESCRIPTION = ord("t")
B_COPY_IN = ord("G")
B_COPY_OUT = ord("H")
B_COPY_BOTH = ord("W")
B_COPY_DATA = ord("d")
B_COPY_DONE = ord("c")
B_FUNCTION_RESULT = ord("V")

FRONTEND_TYPES = frozenset(b"QPBDECSHdcfFXp")
BACKEND_TYPES = frozenset(b"RSKvZTDCIENA123nstGHWdcV")

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")


def _cstring(body: bytes, pos: int) -> tuple[str, int]:
    """The NUL-terminated string at ``pos`` and the offset after its terminator."""
    end = body.index(0, pos)
    return body[pos:end].decode("utf-8", "surrogateescape"), end + 1


def _int16_list(body: bytes, pos: int) -> tuple[list[int], int]:
    (count,) = _I16.unpack_from(body, pos)
    pos += 2
    values = list(struct.unpack_from(f"!{count}h", body, pos))
    return values, pos + 2 * count


def parse_startup(body: bytes) -> tuple[str, dict[str, str]]:
    """Protocol version ("3.0", "3.2") and parameters of a StartupMessage.

    ``body`` starts at the int32 version: major in the high 16 bits, minor in the low.
    """
    (code,) = _I32.unpack_from(body, 0)
    major, minor = code >> 16, code & 0xFFFF
    params: dict[str, str] = {}
    pos = 4
    while pos < len(body) and body[pos] != 0:
        key, pos = _cstring(body, pos)
        value, pos = _cstring(body, pos)
        params[key] = value
    return f"{major}.{minor}", params


def parse_query(body: bytes) -> str:
    return _cstring(body, 0)[0]


def parse_parse(body: bytes) -> tuple[str, str, list[int]]:
    """Statement name, SQL text and declared parameter type OIDs of a Parse."""
    name, pos = _cstring(body, 0)
    sql, pos = _cstring(body, pos)
    (count,) = _I16.unpack_from(body, pos)
    types = list(struct.unpack_from(f"!{count}I", body, pos + 2))
    return name, sql, types


def parse_bind(body: bytes) -> tuple[str, str, list[int], list[bytes | None], list[int]]:
    """Portal, statement, parameter formats, raw values and result formats of a Bind."""
    portal, pos = _cstring(body, 0)
    statement, pos = _cstring(body, pos)
    param_formats, pos = _int16_list(body, pos)
    values, pos = parse_values(body, pos)
    result_formats, pos = _int16_list(body, pos)
    return portal, statement, param_formats, values, result_formats


def parse_values(body: bytes, pos: int = 0) -> tuple[list[bytes | None], int]:
    """An int16 count, then per value an int32 length (-1: NULL) and that many bytes, as
    Bind and DataRow hold them; and the position after them."""
    (count,) = _I16.unpack_from(body, pos)
    pos += 2
    values: list[bytes | None] = []
    for _ in range(count):
        (size,) = _I32.unpack_from(body, pos)
        pos += 4
        if size < 0:
            values.append(None)
        else:
            if pos + size > len(body):
                raise ValueError("a value runs past the end of its message")
            values.append(bytes(body[pos : pos + size]))
            pos += size
    return values, pos


def parse_execute(body: bytes) -> tuple[str, int]:
    portal, pos = _cstring(body, 0)
    (max_rows,) = _I32.unpack_from(body, pos)
    return portal, max_rows


def parse_target(body: bytes) -> tuple[str, str]:
    """Describe/Close: ("S" or "P", name)."""
    return chr(body[0]), _cstring(body, 1)[0]


def parse_function_call(body: bytes) -> int:
    (oid,) = struct.unpack_from("!I", body, 0)
    return int(oid)


def parse_command_complete(body: bytes) -> str:
    return _cstring(body, 0)[0]


_FIELD = struct.Struct("!IhIhih")  # table OID, attnum, type OID, typlen, typmod, format


def row_fields(body: bytes) -> list[tuple[bytes, int, int]]:
    """(name bytes, type OID, format code) per column of a RowDescription: each field is
    its name, then table OID, column number, type OID, type size, type modifier and
    format code (Protocol 55.7, RowDescription). The one reader of that layout."""
    (count,) = _I16.unpack_from(body, 0)
    pos = 2
    fields = []
    for _ in range(count):
        end = body.index(0, pos)
        _table, _attnum, oid, _size, _mod, fmt = _FIELD.unpack_from(body, end + 1)
        fields.append((bytes(body[pos:end]), int(oid), int(fmt)))
        pos = end + 1 + _FIELD.size
    return fields


def parse_row_description(body: bytes) -> list[tuple[str, int]]:
    """(name, type OID) per column of a RowDescription."""
    return [(name.decode("utf-8", "surrogateescape"), oid) for name, oid, _ in row_fields(body)]


# Tags that end with a row count (Protocol 55.7, CommandComplete): "INSERT oid rows",
# "SELECT rows" (CREATE TABLE AS and SELECT INTO too), "UPDATE rows", "DELETE rows",
# "MERGE rows", "FETCH rows", "MOVE rows", "COPY rows". No other tag carries a count,
# whatever its last word looks like.
_COUNTED = frozenset({"INSERT", "SELECT", "UPDATE", "DELETE", "MERGE", "FETCH", "MOVE", "COPY"})


def rows_from_tag(tag: str) -> int | None:
    """The number of rows a CommandComplete tag reports; None for a tag without one."""
    word, _, rest = tag.partition(" ")
    if word in _COUNTED and rest:
        last = rest.rpartition(" ")[2]
        if last.isdigit():
            return int(last)
    return None


def parse_error(body: bytes) -> ErrorInfo:
    """The SQLSTATE, message and severity of an ErrorResponse/NoticeResponse.

    Fields are a type byte and a string each, ending with a zero byte (Protocol 55.8).
    The non-localized severity 'V' (9.6+) wins over the localized 'S'.
    """
    return error_info(error_fields(body))


def error_info(fields: dict[str, str]) -> ErrorInfo:
    severity = fields.get("V") or fields.get("S") or "ERROR"
    return ErrorInfo(fields.get("C", ""), fields.get("M", ""), severity)


def error_fields(body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        fields[code], pos = _cstring(body, pos + 1)
    return fields


def ends_connection(severity: str, sqlstate: str) -> bool:
    """Whether an error comes with the end of its connection: a FATAL or PANIC, or a
    SQLSTATE of class 57P (operator intervention: the backend is terminated) or 08
    (connection exception) (PostgreSQL docs, Appendix A)."""
    return severity in ("FATAL", "PANIC") or sqlstate.startswith(("57P", "08"))


def parse_negotiate_protocol(body: bytes) -> int:
    """The newest minor version of protocol 3 the server supports (Protocol 55.7,
    NegotiateProtocolVersion)."""
    (minor,) = _I32.unpack_from(body, 0)
    return int(minor)
