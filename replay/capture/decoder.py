"""The decoding side of the capture: tapped bytes in, capture records out.

:class:`Decoder` feeds each connection's :class:`~replay.wire.tracker.ConnectionTracker`
and appends what they finish to the capture. It runs in a process of its own
(``python -m replay.capture.decoder``, started by :class:`~replay.capture.recorder.Recorder`)
so that decoding never competes with the proxy's event loop for the interpreter: the
proxy only copies bytes into a pipe. The worst it can do is stop recording a
connection: when its tracker loses the protocol thread, when the tracker fails, or
when the proxy reports that connection's bytes no longer fit its backlog.

The process speaks on stdout: ``ready`` once the capture folder is open (or
``error: ...`` and exit 2), and at the end one JSON line of counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from replay.capture import frames
from replay.capture.format import CaptureWriter
from replay.errors import ReplayError
from replay.model.records import Record, SessionEnd, Statement
from replay.wire.tracker import ConnectionTracker

log = logging.getLogger(__name__)


@dataclass
class RecorderStats:
    """What a capture recorded. ``sessions`` counts the sessions that ran a statement, as
    ``replay inspect`` does; ``recorded`` and ``not_recorded`` count every session end."""

    connections: int = 0
    sessions: int = 0
    recorded: int = 0
    statements: int = 0
    not_recorded: int = 0


class Decoder:
    """Trackers for the open connections, and the capture they write to."""

    def __init__(
        self, writer: CaptureWriter, *, digest_rows: bool = True, copy_cap: int = 1 << 20
    ) -> None:
        self.writer = writer
        self.digest_rows = digest_rows
        self.copy_cap = copy_cap
        self.stats = RecorderStats()
        self._prefix = hashlib.blake2b(writer.writer.encode(), digest_size=3).hexdigest()
        self._trackers: dict[int, ConnectionTracker] = {}

    def handle(self, frame: frames.Frame) -> None:
        """Take one frame; a failure costs that connection only."""
        tap_id, kind, data, ts = frame
        try:
            self._handle(tap_id, kind, data, ts)
        except Exception:  # a bug in decoding must cost one connection, not the capture
            log.exception("recording connection %s failed; it is no longer recorded", tap_id)
            self._finish(tap_id, ts, "recorder error")

    def _handle(self, tap_id: int, kind: int, data: bytes, ts: float) -> None:
        if kind == frames.OPEN:
            self.stats.connections += 1
            self._trackers[tap_id] = ConnectionTracker(
                f"{self._prefix}-{tap_id}", data.decode(), ts,
                digest_rows=self.digest_rows, copy_cap=self.copy_cap)  # fmt: skip
            return
        tracker = self._trackers.get(tap_id)
        if tracker is None:
            return
        if kind == frames.CLIENT:
            tracker.client_data(data, ts)
        elif kind == frames.SERVER:
            tracker.server_data(data, ts)
        elif kind == frames.CLOSED:
            self._finish(tap_id, ts)
            return
        elif kind == frames.OVERLOAD:
            self._finish(tap_id, ts, "capture fell behind; connection no longer recorded")
            return
        self._write(tracker.pop_records())

    def close(self) -> None:
        """End every open session (recorded up to here) and close the capture."""
        now = time.time()
        for tap_id in list(self._trackers):
            self._finish(tap_id, now, "proxy stopped", failed=False)
        self.writer.close()

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
                if record.statements:
                    self.stats.sessions += 1
                if record.recorded:
                    self.stats.recorded += 1
                else:
                    self.stats.not_recorded += 1
            elif isinstance(record, Statement):
                self.stats.statements += 1


def serve(decoder: Decoder, source: object) -> None:
    """Decode the frame stream on ``source`` (a binary file) until it ends."""
    reader = frames.FrameReader()
    read = source.read1 if hasattr(source, "read1") else source.read  # type: ignore[attr-defined]
    while chunk := read(1 << 20):
        for frame in reader.feed(chunk):
            decoder.handle(frame)
    if reader.pending:
        log.warning("the proxy's frame stream ended mid-frame (%d bytes)", reader.pending)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replay.capture.decoder")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--meta", default="{}", help="JSON for the segment headers")
    parser.add_argument("--segment-bytes", type=int, default=64 << 20)
    parser.add_argument("--no-digest", action="store_true")
    parser.add_argument("--copy-cap", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    # The proxy ends this process by closing the pipe, after its last frame: a Ctrl-C
    # meant for the proxy must not cut the decoding short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="replay capture decoder: %(message)s")
    try:
        writer = CaptureWriter(
            args.folder, meta=json.loads(args.meta), segment_bytes=args.segment_bytes
        )
    except ReplayError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    print("ready", flush=True)
    decoder = Decoder(writer, digest_rows=not args.no_digest, copy_cap=args.copy_cap)
    try:
        serve(decoder, sys.stdin.buffer)
    finally:
        decoder.close()
        print(json.dumps(asdict(decoder.stats)), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
