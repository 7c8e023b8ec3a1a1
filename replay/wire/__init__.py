"""The PostgreSQL v3 wire layer: bytes in, protocol messages and capture records out.

Pure code, no sockets and no proxy: the capture addon, log importers and the tests all
feed it bytes. :mod:`~replay.wire.decoder` frames messages per direction,
:mod:`~replay.wire.tracker` turns one connection's two streams into
:mod:`replay.records`, :mod:`~replay.wire.redact` keeps passwords out of SQL text.
"""

from __future__ import annotations

from replay.wire.decoder import BackendDecoder, FrontendDecoder
from replay.wire.redact import redact_sql
from replay.wire.tracker import ConnectionTracker

__all__ = ["BackendDecoder", "ConnectionTracker", "FrontendDecoder", "redact_sql"]
