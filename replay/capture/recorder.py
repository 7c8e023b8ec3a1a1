"""The recording side of the capture: decodes tapped bytes and writes records.

The relay (on mitmproxy's event loop) only appends ``(tap, kind, bytes, time)`` to a
deque; one recorder thread drains it, feeds each connection's
:class:`~replay.wire.tracker.ConnectionTracker` and appends the finished records to the
capture. Nothing here can block or break forwarding: the worst the recorder can do is
stop recording a connection. That happens when its tracker loses the protocol thread,
when it fails, or when the backlog passes ``max_backlog`` bytes (the recorder fell
behind a burst): the connection is then ended in the capture as not recorded, with the
reason, and its bytes keep flowing through the proxy untouched.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass

from replay.capture.format import CaptureWriter
from replay.records import Record, SessionEnd, Statement
from replay.wire.tracker import ConnectionTracker

log = logging.getLogger(__name__)

_OPEN, _CLIENT, _SERVER, _CLOSED, _OVERLOAD = range(5)


class Backlog:
    """Chunks on their way from the relay to the recorder thread.

    Its size in bytes is the difference of two counters each written by one thread
    only (``added`` by the relay, ``removed`` by the recorder), so no lock is needed.
    """

    __slots__ = ("added", "items", "limit", "removed")

    def __init__(self, limit: int) -> None:
        self.items: collections.deque[tuple[int, int, bytes, float]] = collections.deque()
        self.limit = limit
        self.added = 0
        self.removed = 0

    def size(self) -> int:
        return self.added - self.removed


class ConnectionTap:
    """What the relay of one recorded connection calls; each call is one deque append."""

    __slots__ = ("_backlog", "enabled", "id")

    def __init__(self, tap_id: int, backlog: Backlog) -> None:
        self.id = tap_id
        self._backlog = backlog
        self.enabled = True

    def _put(self, kind: int, data: bytes) -> None:
        if not self.enabled:
            return
        backlog = self._backlog
        if backlog.added - backlog.removed >= backlog.limit:
            self.enabled = False
            kind, data = _OVERLOAD, b""
        backlog.added += len(data)
        backlog.items.append((self.id, kind, data, time.time()))

    def client(self, data: bytes) -> None:
        self._put(_CLIENT, data)

    def server(self, data: bytes) -> None:
        self._put(_SERVER, data)

    def closed(self) -> None:
        self._put(_CLOSED, b"")
        self.enabled = False


@dataclass
class RecorderStats:
    connections: int = 0
    recorded: int = 0
    statements: int = 0
    not_recorded: int = 0


class Recorder:
    """Owns the capture writer and the thread that decodes into it."""

    def __init__(
        self,
        writer: CaptureWriter,
        *,
        sample: float = 1.0,
        digest_rows: bool = True,
        copy_cap: int = 1 << 20,
        max_backlog: int = 64 << 20,
    ) -> None:
        self.writer = writer
        self.sample = sample
        self.digest_rows = digest_rows
        self.copy_cap = copy_cap
        self.max_backlog = max_backlog
        self.stats = RecorderStats()
        self._backlog = Backlog(max_backlog)
        self._ids = itertools.count(1)
        self._prefix = hashlib.blake2b(writer.writer.encode(), digest_size=3).hexdigest()
        self._trackers: dict[int, ConnectionTracker] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-recorder", daemon=True)

    # -- called on the proxy's event loop ---------------------------------------------
    def tap(self, client: str) -> ConnectionTap | None:
        """A tap for a new connection, or None when sampling leaves it unrecorded."""
        self.stats.connections += 1
        if self.sample < 1.0 and random.random() >= self.sample:
            return None
        tap = ConnectionTap(next(self._ids), self._backlog)
        self._backlog.items.append((tap.id, _OPEN, client.encode(), time.time()))
        return tap

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Drain the backlog, end every open session and close the capture."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._drain()
        now = time.time()
        for tap_id in list(self._trackers):
            # Recorded up to the stop: the session stays replayable, the reason says why
            # it ends there.
            self._finish(tap_id, now, "proxy stopped", failed=False)
        self.writer.close()

    # -- the recorder thread -------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._drain():
                time.sleep(0.002)

    def _drain(self) -> bool:
        backlog = self._backlog
        items = backlog.items
        worked = False
        while items:
            tap_id, kind, data, ts = items.popleft()
            if kind != _OPEN:
                backlog.removed += len(data)
            worked = True
            try:
                self._handle(tap_id, kind, data, ts)
            except Exception:  # a bug in decoding must cost one connection, not the capture
                log.exception("recording connection %s failed; it is no longer recorded", tap_id)
                self._finish(tap_id, ts, "recorder error")
        return worked

    def _handle(self, tap_id: int, kind: int, data: bytes, ts: float) -> None:
        if kind == _OPEN:
            self._trackers[tap_id] = ConnectionTracker(
                f"{self._prefix}-{tap_id}",
                data.decode(),
                ts,
                digest_rows=self.digest_rows,
                copy_cap=self.copy_cap,
            )
            return
        tracker = self._trackers.get(tap_id)
        if tracker is None:
            return
        if kind == _CLIENT:
            tracker.client_data(data, ts)
        elif kind == _SERVER:
            tracker.server_data(data, ts)
        elif kind == _CLOSED:
            self._finish(tap_id, ts)
            return
        elif kind == _OVERLOAD:
            self._finish(tap_id, ts, "capture fell behind; connection no longer recorded")
            return
        self._write(tracker.pop_records())

    def _finish(self, tap_id: int, ts: float, reason: str = "", *, failed: bool = True) -> None:
        tracker = self._trackers.pop(tap_id, None)
        if tracker is None:
            return
        try:
            records = tracker.close(ts)
        except Exception:
            log.exception("closing the recording of connection %s failed", tap_id)
            records = [SessionEnd(f"{self._prefix}-{tap_id}", ts, recorded=False)]
            reason = reason or "recorder error"
        if reason:
            for record in records:
                if isinstance(record, SessionEnd) and record.recorded:
                    record.recorded, record.reason = not failed, reason
        self._write(records)

    def _write(self, records: list[Record]) -> None:
        if not records:
            return
        self.writer.write_many(records)
        for record in records:
            if isinstance(record, SessionEnd):
                if record.recorded:
                    self.stats.recorded += 1
                else:
                    self.stats.not_recorded += 1
            elif isinstance(record, Statement):
                self.stats.statements += 1
