"""Digests of result rows, equal whether computed from the wire or from libpq.

A row is hashed as the body of its DataRow message (PostgreSQL docs 55.7, DataRow):
an int16 column count, then per column an int32 length (-1 for NULL) and the bytes.
The capture hashes the raw message body without parsing it; the replay engine rebuilds
the same bytes from libpq's result (with :func:`replay.wire.build.values`, the one
encoder), so both sides agree on identical rows.

Two digests are kept: an order-sensitive one (for statements with a top-level ORDER BY)
and an order-insensitive one, a sum of per-row hashes modulo 2**128, so the same
multiset of rows in any order gives the same value.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from replay.wire.build import values as encode_row

_MOD = 1 << 128
_LENGTH = struct.Struct("!I")
_blake2b = hashlib.blake2b


class RowDigest:
    """Accumulates both digests over the rows of one result."""

    __slots__ = ("_ordered", "_unordered", "rows")

    def __init__(self) -> None:
        self._ordered = hashlib.blake2b(digest_size=16)
        self._unordered = 0
        self.rows = 0

    def add_datarow(self, body: bytes) -> None:
        """Add one row given as a DataRow message body."""
        self.rows += 1
        self._ordered.update(_LENGTH.pack(len(body)) + body)
        self._unordered = (
            self._unordered + int.from_bytes(_blake2b(body, digest_size=16).digest(), "big")
        ) % _MOD

    def add_values(self, values: Sequence[bytes | None]) -> None:
        self.add_datarow(encode_row(values))

    @property
    def ordered(self) -> str:
        return self._ordered.hexdigest()

    @property
    def unordered(self) -> str:
        return f"{self._unordered:032x}"
