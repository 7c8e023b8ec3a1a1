"""The proxy's side of recording: copy tapped bytes to the decoder process, cheaply.

The relay (on mitmproxy's event loop) only appends ``(tap, kind, bytes, time)`` to a
deque. A feeder thread packs whatever has gathered into one write on the pipe to the
decoder process (:mod:`replay.capture.decoder`), which does all the decoding and
writing. A pipe write releases the interpreter, so the event loop keeps forwarding
while the feeder waits on a slow decoder; if the decoder falls behind a burst by more
than ``max_backlog`` bytes, the connections still sending stop being recorded (the
decoder ends them as not recorded, with the reason) and their bytes keep flowing
through the proxy untouched. If the decoder dies, recording stops; forwarding does not.
:meth:`Recorder.stop` may also be called while the proxy goes on (``replay capture``
does on SIGUSR1): the capture is closed, and every connection, open or new, is only
forwarded from then on.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import random
import subprocess
import sys
import threading
import time
from dataclasses import fields

from replay.capture import frames
from replay.capture.decoder import RecorderStats
from replay.errors import CaptureError

log = logging.getLogger(__name__)

# Backlog.limit once the capture is closed while the proxy goes on: below any backlog,
# so that every tap turns itself off at its next chunk, and told apart from -1 (the
# decoder died).
WINDOW_CLOSED = -2
FEED_INTERVAL = 0.002  # seconds between two handovers to the decoder when traffic is light
BATCH_BYTES = 1 << 20

__all__ = ["Backlog", "ConnectionTap", "Recorder", "RecorderStats"]


class Backlog:
    """Frames on their way from the relay to the feeder thread.

    Its size in bytes is the difference of two counters each written by one thread
    only (``added`` by the relay, ``removed`` by the feeder), so no lock is needed.
    """

    __slots__ = ("added", "items", "limit", "removed")

    def __init__(self, limit: int) -> None:
        self.items: collections.deque[frames.Frame] = collections.deque()
        self.limit = limit
        self.added = 0
        self.removed = 0

    def put(self, frame: frames.Frame) -> None:
        # No wake-up call: the feeder comes by every FEED_INTERVAL. Waking it per chunk
        # would hand it the interpreter once per message, right when the loop is busy.
        self.items.append(frame)


class ConnectionTap:
    """What the relay of one recorded connection calls: each call is one deque append."""

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
            # A closed capture window ends the session as recorded up to here; a decoder
            # that fell behind (or died) ends it as not recorded.
            kind = frames.CLOSED if backlog.limit == WINDOW_CLOSED else frames.OVERLOAD
            data = b""
        backlog.added += len(data)
        backlog.put((self.id, kind, data, time.time()))

    def client(self, data: bytes) -> None:
        self._put(frames.CLIENT, data)

    def server(self, data: bytes) -> None:
        self._put(frames.SERVER, data)

    def closed(self) -> None:
        self._put(frames.CLOSED, b"")
        self.enabled = False


class Recorder:
    """Owns the decoder process and the feeder thread that keeps it supplied."""

    def __init__(
        self,
        folder: str,
        *,
        meta: dict[str, object] | None = None,
        segment_bytes: int = 64 << 20,
        sample: float = 1.0,
        digest_rows: bool = True,
        copy_cap: int = 1 << 20,
        max_backlog: int = 64 << 20,
    ) -> None:
        self.command = [
            sys.executable, "-m", "replay.capture.decoder", str(folder),
            "--meta", json.dumps(meta or {}), "--segment-bytes", str(segment_bytes),
            "--copy-cap", str(copy_cap), *([] if digest_rows else ["--no-digest"]),
        ]  # fmt: skip
        self.sample = sample
        self.stats = RecorderStats()
        self._backlog = Backlog(max_backlog)
        self._ids = itertools.count(1)
        self._stopping = False
        self._stopped = False
        self._dead = False
        self._process: subprocess.Popen[bytes] | None = None
        self._feeder = threading.Thread(target=self._feed, name="replay-feeder", daemon=True)

    # -- called on the proxy's event loop ---------------------------------------------
    def tap(self, client: str) -> ConnectionTap | None:
        """A tap for a new connection, or None when sampling leaves it unrecorded."""
        self.stats.connections += 1
        if self._dead or (self.sample < 1.0 and random.random() >= self.sample):
            return None
        tap = ConnectionTap(next(self._ids), self._backlog)
        self._backlog.put((tap.id, frames.OPEN, client.encode(), time.time()))
        return tap

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the decoder; CaptureError if it cannot open the capture folder."""
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C for the proxy is not for the decoder
        )  # fmt: skip
        assert self._process.stdout is not None
        first = self._process.stdout.readline().decode().strip()
        if first != "ready":
            self._process.communicate()  # reaps it and closes both pipes
            raise CaptureError(first.removeprefix("error: ") or "the capture decoder did not start")
        self._feeder.start()

    def stop(self) -> None:
        """Hand over what is left, let the decoder end every session, close the capture.

        Safe to call while connections go on (they stop being recorded: new ones get no
        tap, open ones turn theirs off at their next chunk) and more than once."""
        if self._stopped:
            return
        self._stopped = True
        self._dead = True  # no tap for a new connection
        self._backlog.limit = WINDOW_CLOSED  # an open connection's tap turns itself off
        self._stopping = True
        if self._feeder.is_alive():
            self._feeder.join()
        process = self._process
        if process is None:
            return
        assert process.stdout is not None
        out = process.stdout.read()  # the feeder closed stdin: the decoder finishes
        process.stdout.close()
        process.wait()
        lines = out.decode().strip().splitlines()
        try:
            counts = json.loads(lines[-1]) if lines else {}
        except ValueError:
            counts = {}
        for field in fields(RecorderStats):
            if field.name != "connections" and field.name in counts:
                setattr(self.stats, field.name, int(counts[field.name]))

    # -- the feeder thread --------------------------------------------------------------
    def _feed(self) -> None:
        backlog, process = self._backlog, self._process
        assert process is not None and process.stdin is not None
        pipe = process.stdin
        items = backlog.items
        while True:
            if not items:
                if self._stopping:
                    break
                time.sleep(FEED_INTERVAL)
                continue
            batch = []
            size = 0
            while items and size < BATCH_BYTES:
                frame = items.popleft()
                if frame[1] != frames.OPEN:
                    size += len(frame[2])
                batch.append(frame)
            try:
                pipe.write(frames.encode(batch))
                pipe.flush()
            except (BrokenPipeError, OSError):
                log.error("the capture decoder exited; recording stops, forwarding goes on")
                self._dead = True
                backlog.limit = -1  # every tap turns itself off at its next chunk
                items.clear()
                break
            finally:
                backlog.removed += size
            if size < BATCH_BYTES:
                time.sleep(FEED_INTERVAL)  # let the next batch gather
        with contextlib.suppress(OSError):
            pipe.close()
