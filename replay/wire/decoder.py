"""Incremental framers for the two directions of a PostgreSQL v3 connection.

Bytes in, ``(kind, body)`` messages out, no I/O: :meth:`feed` takes whatever chunk the
proxy saw and returns the messages it completed, however the stream was split. A
stream that cannot be PostgreSQL (a length below 4, an unknown type byte, a declared
length no server would accept) marks the decoder *desynchronized* with a reason; from
then on :meth:`feed` returns nothing and costs nothing. Nothing is ever raised to the
caller and nothing is allocated on a declared length: only bytes that arrived are
buffered.

Speed matters (the capture worker must keep up with pgbench), so the hot loop works on
the incoming ``bytes`` directly and copies a message body only once, by slicing. Only
an incomplete tail is kept, in a ``bytearray``; while it is short of the length the
header announced, new chunks are appended without re-parsing. Bodies of message kinds
in ``drop`` (passwords, cancel keys, and rows when the caller does not digest them)
are skipped as they stream by and handed out empty.
"""

from __future__ import annotations

import struct

from replay.wire import messages as m
from replay.wire.messages import Message

# The server refuses a message longer than MaxAllocSize - 1 (PQ_LARGE_MESSAGE_LIMIT in
# pqcomm.h); no legitimate message is longer.
LARGE_LIMIT = (1 << 30) - 1
# Messages that carry no user data are small; the server caps most client ones at
# 10000 bytes (PQ_SMALL_MESSAGE_LIMIT) and libpq treats long non-data server messages
# as a sync loss. A few MB keeps us far from false alarms.
SMALL_LIMIT = 4 << 20
# The longest message a capture buffers to record. A longer one (a statement or a row of
# hundreds of MB) is legitimate, but would cost the decoder several times its size: the
# connection is forwarded as ever and stops being recorded, with the reason.
RECORD_LIMIT = 32 << 20
# postmaster refuses a startup packet longer than this (MAX_STARTUP_PACKET_LENGTH).
MAX_STARTUP_LENGTH = 10000
# How a TLS record begins: a direct-SSL client (PostgreSQL 17 sslnegotiation=direct),
# or one that got an 'S' answer, speaks TLS from here on.
_TLS_HANDSHAKE = 0x16

_HEADER = struct.Struct("!BI")
_STARTUP_HEADER = struct.Struct("!ii")
_EMPTY = b""


def _limits(types: frozenset[int], large: bytes) -> list[int]:
    """Per type byte, the longest declared length accepted; 0 for an unknown type."""
    table = [0] * 256
    for typ in types:
        table[typ] = LARGE_LIMIT if typ in large else SMALL_LIMIT
    return table


# Client messages that carry SQL or data may be large (the server's SocketBackend
# allows PQ_LARGE_MESSAGE_LIMIT for exactly these).
_FRONTEND_LIMITS = _limits(m.FRONTEND_TYPES, b"QPBFd")
# libpq's VALID_LONG_MESSAGE_TYPE (fe-protocol3.c): rows, copy data, function results,
# and errors/notices/notifications that carry arbitrary user text.
_BACKEND_LIMITS = _limits(m.BACKEND_TYPES, b"TDdVENA")


def _type_name(typ: int) -> str:
    return repr(chr(typ)) if 32 < typ < 127 else f"0x{typ:02x}"


class _Framer:
    """The typed-message framing shared by both directions (Protocol 55.7: a type
    byte, then an int32 length that counts itself but not the type byte)."""

    __slots__ = ("_drop", "_ignore", "_limits", "_need", "_pending", "_skip", "reason")

    side = ""

    def __init__(self, limits: list[int], drop: frozenset[int]) -> None:
        self._limits = limits
        self._drop = drop
        self._pending = bytearray()
        self._need = 0
        self._skip = 0
        self._ignore = False
        self.reason = ""

    @property
    def desynchronized(self) -> bool:
        return bool(self.reason)

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """The messages completed by this chunk, in stream order."""
        out: list[Message] = []
        if self.reason or self._ignore or not data:
            return out
        if not isinstance(data, bytes):
            data = bytes(data)
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return out
            data = data[self._skip :]
            self._skip = 0
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._need:
                return out
            data = bytes(pending)
            pending.clear()
        pos = self._frame(data, out)
        if pos < len(data) and not (self.reason or self._ignore):
            pending += memoryview(data)[pos:]
        return out

    def _frame(self, data: bytes, out: list[Message]) -> int:
        return self._frame_typed(data, 0, out)

    def _frame_typed(self, data: bytes, pos: int, out: list[Message]) -> int:
        n = len(data)
        limits = self._limits
        drop = self._drop
        unpack = _HEADER.unpack_from
        append = out.append
        while n - pos >= 5:
            typ, length = unpack(data, pos)
            if length < 4 or length > limits[typ]:
                self._bad_header(typ, length)
                return n
            end = pos + 1 + length
            if length > RECORD_LIMIT and typ not in drop:
                self.reason = (
                    f"{self.side} message {_type_name(typ)} of {length:,} bytes is longer than "
                    f"a capture records ({RECORD_LIMIT:,}): the connection is no longer recorded"
                )
                return n
            if typ in drop:
                append((typ, _EMPTY))
                if end > n:
                    self._skip = end - n
                    return n
            elif end > n:
                self._need = end - pos
                return pos
            else:
                append((typ, data[pos + 5 : end]))
            pos = end
        self._need = 5
        return pos

    def _bad_header(self, typ: int, length: int) -> None:
        if self._limits[typ] == 0:
            self.reason = f"unknown {self.side} message type {_type_name(typ)}"
        elif length < 4:
            self.reason = f"invalid length {length} for {self.side} message {_type_name(typ)}"
        else:
            self.reason = (
                f"{self.side} message {_type_name(typ)} declares an absurd length {length}"
            )


class FrontendDecoder(_Framer):
    """Client-to-server messages, from the first startup packet on.

    The startup phase has untyped packets (an int32 length, then an int32 code): an
    SSLRequest or GSSENCRequest is followed, after the server's one-byte answer, by
    another startup packet; a CancelRequest ends the connection; a StartupMessage
    starts the typed phase (Protocol 55.2.1, 55.2.10, 55.2.11).
    """

    __slots__ = ("_startup",)

    side = "frontend"

    def __init__(self, *, drop: frozenset[int] = frozenset()) -> None:
        super().__init__(_FRONTEND_LIMITS, drop | {m.F_PASSWORD})
        self._startup = True

    def _frame(self, data: bytes, out: list[Message]) -> int:
        pos = 0
        while self._startup:
            if len(data) - pos < 8:
                if pos < len(data) and data[pos] == _TLS_HANDSHAKE:
                    self.reason = "TLS handshake: encrypted connection"
                self._need = 8
                return pos
            length, code = _STARTUP_HEADER.unpack_from(data, pos)
            if data[pos] == _TLS_HANDSHAKE:
                self.reason = "TLS handshake: encrypted connection"
                return len(data)
            if length < 8 or length > MAX_STARTUP_LENGTH:
                self.reason = f"invalid startup packet length {length}"
                return len(data)
            if code in (m.SSL_REQUEST_CODE, m.GSSENC_REQUEST_CODE):
                out.append((m.SSL_REQUEST if code == m.SSL_REQUEST_CODE else m.GSSENC_REQUEST, b""))
                pos += 8
                continue
            if code == m.CANCEL_REQUEST_CODE:
                # The process id and secret key follow; they are never kept, and the
                # connection carries nothing else (Protocol 55.2.10).
                out.append((m.CANCEL_REQUEST, b""))
                self._ignore = True
                return len(data)
            if code >> 16 != 3:
                self.reason = f"unsupported protocol version {code >> 16}.{code & 0xFFFF}"
                return len(data)
            if len(data) - pos < length:
                self._need = length
                return pos
            out.append((m.STARTUP, data[pos + 4 : pos + length]))
            pos += length
            self._startup = False
        return self._frame_typed(data, pos, out)


class BackendDecoder(_Framer):
    """Server-to-client messages.

    Before its first typed message, the server may send single-byte answers to
    SSLRequest/GSSENCRequest: 'N' (go on in the clear), 'S' or 'G' (encryption follows,
    which we cannot read). The server sends no NoticeResponse or ParameterStatus before
    authentication, so a lone 'N'/'S'/'G' at that point can only be such an answer
    (Protocol 55.2.10, 55.2.11).
    """

    __slots__ = ("_answers",)

    side = "backend"

    def __init__(self, *, drop: frozenset[int] = frozenset()) -> None:
        super().__init__(_BACKEND_LIMITS, drop | {m.B_BACKEND_KEY_DATA, m.B_AUTHENTICATION})
        self._answers = True

    def _frame(self, data: bytes, out: list[Message]) -> int:
        pos = 0
        while self._answers and pos < len(data):
            answer = data[pos]
            if answer == 0x4E:  # 'N'
                out.append((m.SSL_ANSWER, b"N"))
                pos += 1
            elif answer in (0x53, 0x47):  # 'S', 'G'
                out.append((m.SSL_ANSWER, bytes((answer,))))
                kind = "TLS" if answer == 0x53 else "GSSAPI"
                self.reason = f"{kind}-encrypted connection"
                return len(data)
            else:
                self._answers = False
        return self._frame_typed(data, pos, out)
