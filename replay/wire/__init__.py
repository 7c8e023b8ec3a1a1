"""The PostgreSQL v3 wire layer: bytes in, protocol messages and capture records out.

Pure code, no sockets and no proxy: the capture addon, log importers and the tests all
feed it bytes. :mod:`~replay.wire.decoder` frames messages per direction,
:mod:`~replay.wire.messages` reads message bodies (and holds the protocol's rules:
which tags count rows, which errors end a connection), :mod:`~replay.wire.build` is the
one encoder of messages (the replay's requests are built with it),
:mod:`~replay.wire.tracker` turns one connection's two streams into
:mod:`replay.model.records` (asking :mod:`replay.sql.redact` to keep passwords out of
SQL text), :mod:`~replay.wire.digest` digests result rows.
"""

from __future__ import annotations

from replay.wire.decoder import BackendDecoder, FrontendDecoder
from replay.wire.tracker import ConnectionTracker

__all__ = ["BackendDecoder", "ConnectionTracker", "FrontendDecoder"]
