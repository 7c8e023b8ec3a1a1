"""The on-disk capture format: a folder of append-only, line-oriented segments.

A capture is a folder (created owner-only). Each writer process appends to its own
segments, named ``<writer>-<n>.jsonl`` with ``n`` counting from 1; a segment is rotated
when it passes ``segment_bytes``. Every segment opens with a header line::

    {"format": "shadow-replay-capture", "version": 1, "writer": "...", "segment": 1, ...}

followed by one record per line (see :mod:`replay.model.records`). Lines are flushed as
written and fsynced every ``fsync_interval`` seconds and at close, so a proxy that is
killed loses at most the line it was writing: the reader returns every whole record
before a torn last line and reports the file and offset.

Reading streams: memory does not depend on the capture's length.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from replay.errors import CaptureError
from replay.model.records import Record, SessionEnd, Statement, record_from_json

FORMAT = "shadow-replay-capture"
VERSION = 1
SEGMENT_RE = re.compile(r"^(?P<writer>[A-Za-z0-9_.-]+)-(?P<n>\d{6})\.jsonl$")

log = logging.getLogger(__name__)
Warn = Callable[[str], None]


def _log_warning(message: str) -> None:
    log.warning("%s", message)


def _writer_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"
    return f"{host}.{os.getpid()}.{int(time.time())}"


def make_capture_dir(folder: Path) -> None:
    """Create the capture folder owner-only (captures hold production data)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)


class CaptureWriter:
    """Appends records to a capture folder. Not thread-safe: one writer thread."""

    def __init__(
        self,
        folder: Path | str,
        *,
        meta: dict[str, Any] | None = None,
        segment_bytes: int = 64 << 20,
        fsync_interval: float = 1.0,
        writer: str | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.meta = dict(meta or {})
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.writer = writer or _writer_id()
        self.records = 0
        self._segment = 0
        self._file: IO[str] | None = None
        self._size = 0
        self._last_sync = time.monotonic()
        try:
            make_capture_dir(self.folder)
            # The first segment exists from the start: an idle capture is still a capture.
            self._open_next()
        except OSError as exc:
            raise CaptureError(
                f"cannot create capture folder {self.folder}: {exc.strerror}"
            ) from exc

    @property
    def segment_path(self) -> Path:
        return self.folder / f"{self.writer}-{self._segment:06d}.jsonl"

    def _open_next(self) -> IO[str]:
        self._close_file()
        self._segment += 1
        fd = os.open(self.segment_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        header = {
            "format": FORMAT,
            "version": VERSION,
            "writer": self.writer,
            "segment": self._segment,
            "created": time.time(),
            **self.meta,
        }
        line = json.dumps(header, separators=(",", ":")) + "\n"
        handle.write(line)
        handle.flush()
        self._file = handle
        self._size = len(line)
        return handle

    def write(self, record: Record) -> None:
        self.write_many((record,))

    def write_many(self, records: Iterable[Record]) -> None:
        """Append records and flush them with one write: a line is never half-flushed.

        JSON is written ASCII-escaped: a text parameter that was not valid UTF-8 is held
        as lone surrogates (``surrogateescape``), which only an escape can carry.
        """
        lines = "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in records)
        if not lines:
            return
        handle = self._file
        if handle is None or self._size >= self.segment_bytes:
            handle = self._open_next()
        handle.write(lines)
        handle.flush()
        self._size += len(lines)
        self.records += lines.count("\n")
        if time.monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()

    def sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._last_sync = time.monotonic()

    def _close_file(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None

    def close(self) -> None:
        self._close_file()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Segment:
    path: Path
    writer: str
    number: int


def segments(folder: Path | str) -> list[Segment]:
    """The segments of a capture, each writer's in order; CaptureError if there are none."""
    path = Path(folder)
    if not path.exists():
        raise CaptureError(f"capture not found: {path}")
    if not path.is_dir():
        raise CaptureError(f"not a capture folder: {path}")
    found = []
    for entry in path.iterdir():
        match = SEGMENT_RE.match(entry.name)
        if match:
            found.append(Segment(entry, match["writer"], int(match["n"])))
    if not found:
        raise CaptureError(f"no capture segments in {path}")
    return sorted(found, key=lambda s: (s.writer, s.number))


def read_header(segment: Path) -> dict[str, Any]:
    try:
        with segment.open("rb") as handle:
            first = handle.readline()
    except OSError as exc:
        raise CaptureError(f"cannot read {segment}: {exc.strerror}") from exc
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CaptureError(f"{segment} is not a shadow-replay capture segment")
    if header.get("version") != VERSION:
        raise CaptureError(
            f"{segment}: capture format version {header.get('version')} "
            f"is not supported (this version reads {VERSION})"
        )
    return header


def capture_meta(folder: Path | str) -> dict[str, Any]:
    """The header of the capture's first segment (its writer, source, options)."""
    return read_header(segments(folder)[0].path)


def _segment_lines(segment: Path, warn: Warn) -> Iterator[tuple[int, bytes]]:
    """The complete record lines of a segment, with their offsets."""
    read_header(segment)
    with segment.open("rb") as handle:
        offset = len(handle.readline())
        for raw in handle:
            if not raw.endswith(b"\n"):
                warn(
                    f"{segment}: torn last record at offset {offset} ignored "
                    "(the writer was stopped mid-line)"
                )
                return
            yield offset, raw
            offset += len(raw)


def _segment_records(segment: Path, warn: Warn, batches: dict[str, str]) -> Iterator[Record]:
    for offset, raw in _segment_lines(segment, warn):
        try:
            record = record_from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            warn(f"{segment}: unreadable record at offset {offset} skipped ({exc})")
        else:
            yield _rebatch(record, batches)


_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "statement": {"session": str, "seq": int, "start": (int, float), "sql": str},
    "session": {"id": str, "start": (int, float)},
    "session_end": {"id": str},
}


def read_raw(
    folder: Path | str, warn: Warn | None = None
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Every record of a capture as its decoded JSON object and its line, unchanged, for
    a reader that passes lines on (the replay's split): the same lines as
    :func:`read_records`, with the fields every record needs checked, not the rest."""
    for segment in segments(folder):
        for offset, raw in _segment_lines(segment.path, warn or _log_warning):
            try:
                obj = orjson.loads(raw)
                required = _REQUIRED[obj["type"]]
                for key, kind in required.items():
                    if not isinstance(obj[key], kind):
                        raise TypeError(f"{key} is {type(obj[key]).__name__}")
            except (ValueError, KeyError, TypeError) as exc:
                (warn or _log_warning)(
                    f"{segment.path}: unreadable record at offset {offset} skipped ({exc})"
                )
            else:
                yield obj, raw


def _rebatch(record: Record, batches: dict[str, str]) -> Record:
    """Give a batch's later statements the batch text written with its first one."""
    if isinstance(record, Statement):
        if record.batch is not None:
            batches[record.session] = record.batch
        elif record.batch_index > 0:
            record.batch = batches.get(record.session)
    elif isinstance(record, SessionEnd):
        batches.pop(record.id, None)
    return record


def read_records(folder: Path | str, warn: Warn | None = None) -> Iterator[Record]:
    """Every record of a capture, streamed: each writer's segments in order.

    ``warn`` hears of torn or unreadable lines; by default they are logged."""
    batches: dict[str, str] = {}
    for segment in segments(folder):
        yield from _segment_records(segment.path, warn or _log_warning, batches)
