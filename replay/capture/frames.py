"""How tapped chunks travel from the proxy process to the decoder process.

A frame is a fixed header (tap id, kind, capture time, length) and the chunk's bytes.
The proxy packs whatever its backlog holds into one write; the decoder reads frames
back however the pipe splits them. Pure: bytes in, frames out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

HEADER = struct.Struct("!IBdI")  # tap id, kind, time.time(), length of the data

# Kinds of frame: a connection opens (data = client address), bytes from either side,
# the connection closes, the proxy stopped taking its bytes (backlog over its limit).
OPEN, CLIENT, SERVER, CLOSED, OVERLOAD = range(5)

Frame = tuple[int, int, bytes, float]


def encode(frames: Iterable[Frame]) -> bytes:
    """One buffer holding ``frames`` in order."""
    pack = HEADER.pack
    parts: list[bytes] = []
    for tap_id, kind, data, ts in frames:
        parts.append(pack(tap_id, kind, ts, len(data)))
        parts.append(data)
    return b"".join(parts)


class FrameReader:
    """Incremental decoder of a frame stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset, size = 0, len(buffer)
        unpack, header = HEADER.unpack_from, HEADER.size
        while size - offset >= header:
            tap_id, kind, ts, length = unpack(buffer, offset)
            end = offset + header + length
            if end > size:
                break
            frames.append((tap_id, kind, bytes(buffer[offset + header : end]), ts))
            offset = end
        del buffer[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (a torn stream if nonzero at EOF)."""
        return len(self._buffer)
