"""The forwarding path: a mitmproxy layer that relays one PostgreSQL connection.

It replaces mitmproxy's generic TCP layer for our connections so that no hook is
dispatched per message: each chunk is handed to a :class:`Tap` (a deque append, no
decoding) and forwarded unchanged, in the same event-loop step. Decoding happens in the
recorder's decoder process, off this path.

Two things it does beyond relaying, both before the server has seen a byte:

* An SSLRequest or GSSENCRequest (PostgreSQL docs 55.2.10-11) is answered ``N`` by the
  proxy itself, so the client continues in plaintext and we can read the session. A
  client with ``sslmode=require`` then fails with libpq's own "server does not support
  SSL" message. Run the proxy as a sidecar, next to the application, so this hop never
  crosses a network.
* The upstream is connected when the client's startup packet is complete. If it cannot
  be reached, the client gets a FATAL ErrorResponse (SQLSTATE 08006) that says so,
  instead of a bare closed socket, and the proxy keeps serving: the next connection
  tries again.
"""

from __future__ import annotations

import logging
import struct
from typing import Protocol

from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.context import Context

log = logging.getLogger(__name__)
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
# A startup packet is small; anything longer than this in the first bytes is not one.
MAX_STARTUP_PACKET = 10_000


class Tap(Protocol):
    """Where the relay hands what it forwards; must be cheap and must not raise."""

    def client(self, data: bytes) -> None: ...

    def server(self, data: bytes) -> None: ...

    def closed(self) -> None: ...


def error_response(sqlstate: str, message: str) -> bytes:
    """A FATAL ErrorResponse message (PostgreSQL docs 55.7 and 55.8)."""
    fields = b"".join(
        code + value.encode() + b"\0"
        for code, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


def startup_code(code: int) -> bool:
    """Whether ``code`` opens a PostgreSQL startup packet (a 3.x version or a request)."""
    return code >> 16 == 3 or code in (SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST)


def encryption_request(packet: bytes) -> bool:
    """Whether a startup packet asks for SSL or GSS encryption."""
    if len(packet) != 8:
        return False
    return struct.unpack_from("!I", packet, 4)[0] in (SSL_REQUEST, GSSENC_REQUEST)


class PostgresRelay(layer.Layer):
    """Relays one connection byte for byte, tapping both directions."""

    def __init__(self, context: Context, tap: Tap | None, upstream: str = "") -> None:
        super().__init__(context)
        self.tap = tap
        self.upstream = upstream or "the upstream server"
        self._startup = bytearray()
        self._handle_event = self._await_startup  # type: ignore[method-assign]

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        yield from ()  # replaced per state in __init__

    # -- state 1: until the client's startup packet is complete ---------------------
    def _await_startup(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start):
            return
        if isinstance(event, events.ConnectionClosed):
            yield from self._close_all()
            return
        if not isinstance(event, events.DataReceived):
            return
        if event.connection is not self.context.client:
            # A server greeting before the client spoke is not PostgreSQL: just relay.
            yield from self._start_relaying(event)
            return
        self._startup += event.data
        while len(self._startup) >= 8:
            length, code = struct.unpack_from("!II", self._startup)
            if length < 8 or length > MAX_STARTUP_PACKET or not startup_code(code):
                break  # not a PostgreSQL startup: relay whatever it is
            if len(self._startup) < length:
                return
            packet = bytes(self._startup[:length])
            if not encryption_request(packet):
                break
            del self._startup[:length]
            if self.tap is not None:
                self.tap.client(packet)
                self.tap.server(b"N")
            yield commands.SendData(self.context.client, b"N")
        else:
            if len(self._startup) < 8:
                return
        pending, self._startup = bytes(self._startup), bytearray()
        yield from self._connect_and_send(pending)

    def _connect_and_send(self, pending: bytes) -> layer.CommandGenerator[None]:
        server = self.context.server
        if server.state is ConnectionState.CLOSED:
            err = yield commands.OpenConnection(server)
            if err:
                log.warning("cannot reach the upstream %s for a client: %s", self.upstream, err)
                yield commands.SendData(
                    self.context.client,
                    error_response(
                        "08006", f"shadow-replay capture proxy: cannot reach {self.upstream}: {err}"
                    ),
                )
                yield commands.CloseConnection(self.context.client)
                if self.tap is not None:
                    self.tap.closed()
                self._handle_event = self._done  # type: ignore[method-assign]
                return
        self._handle_event = self._relay  # type: ignore[method-assign]
        if self.tap is not None:
            self.tap.client(pending)
        yield commands.SendData(server, pending)

    def _start_relaying(self, event: events.DataReceived) -> layer.CommandGenerator[None]:
        if self.tap is not None:
            self.tap.closed()
            self.tap = None
        pending, self._startup = bytes(self._startup), bytearray()
        if self.context.server.state is ConnectionState.CLOSED:
            err = yield commands.OpenConnection(self.context.server)
            if err:
                yield commands.CloseConnection(self.context.client)
                self._handle_event = self._done  # type: ignore[method-assign]
                return
        self._handle_event = self._relay  # type: ignore[method-assign]
        if pending:
            yield commands.SendData(self.context.server, pending)
        yield from self._relay(event)

    # -- state 2: relaying ------------------------------------------------------------
    def _relay(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            tap = self.tap
            if event.connection is self.context.client:
                if tap is not None:
                    tap.client(event.data)
                yield commands.SendData(self.context.server, event.data)
            else:
                if tap is not None:
                    tap.server(event.data)
                yield commands.SendData(self.context.client, event.data)
        elif isinstance(event, events.ConnectionClosed):
            client, server = self.context.client, self.context.server
            if (client.state & ConnectionState.CAN_READ) or (
                server.state & ConnectionState.CAN_READ
            ):
                other = server if event.connection is client else client
                yield commands.CloseTcpConnection(other, half_close=True)
            else:
                yield from self._close_all()

    def _close_all(self) -> layer.CommandGenerator[None]:
        self._handle_event = self._done  # type: ignore[method-assign]
        if self.context.server.state is not ConnectionState.CLOSED:
            yield commands.CloseConnection(self.context.server)
        if self.context.client.state is not ConnectionState.CLOSED:
            yield commands.CloseConnection(self.context.client)
        if self.tap is not None:
            self.tap.closed()
            self.tap = None

    def _done(self, event: events.Event) -> layer.CommandGenerator[None]:
        yield from ()
