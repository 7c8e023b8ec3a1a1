"""The on-disk capture format: a folder of append-only, line-oriented segments.

A capture is a folder (created owner-only). Each writer process appends to its own
segments, named ``<writer>-<n>.jsonl`` with ``n`` counting from 1; a segment is rotated
when it passes ``segment_bytes``. Every segment opens with a header line::

    {"format": "shadow-replay-capture", "version": 2, "writer": "...", "segment": 1, ...}

followed by one record per line (see :mod:`replay.model.records`). Lines are flushed as
written and fsynced every ``fsync_interval`` seconds and at close, so a proxy that is
killed loses at most the line it was writing: the reader returns every whole record
before a torn last line and reports the file and offset.

Since version 2 every line, the header's too, ends in a tab and the CRC-32C of its JSON
as eight hex digits (the checksum PostgreSQL's WAL records carry). JSON never holds a raw
tab, so the mark is unambiguous. A line whose checksum does not match is damaged: it is
skipped and reported, never read as another statement; records that a damaged newline
joined to it are still recovered by their own checksums, and so are the records of a
segment whose header is damaged. Version 1 segments (no checksums) stay readable.

Reading streams: memory does not depend on the capture's length.
"""

from __future__ import annotations

import itertools
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
from crc32c import crc32c

from replay.errors import CaptureError
from replay.model.records import Record, SessionEnd, Statement, record_from_json

FORMAT = "shadow-replay-capture"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no checksums
SEGMENT_RE = re.compile(r"^(?P<writer>[A-Za-z0-9_.-]+)-(?P<n>\d{6})\.jsonl$")

log = logging.getLogger(__name__)
Warn = Callable[[str], None]


def _log_warning(message: str) -> None:
    log.warning("%s", message)


def _writer_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"
    return f"{host}.{os.getpid()}.{int(time.time())}"


def checksummed(text: str) -> str:
    """A capture line: the record's JSON (ASCII), a tab, its CRC-32C in hex, a newline."""
    return f"{text}\t{crc32c(text.encode('ascii')):08x}\n"


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
        line = checksummed(json.dumps(header, separators=(",", ":")))
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
        lines = "".join(
            checksummed(json.dumps(r.to_json(), separators=(",", ":"))) for r in records
        )
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


_MARK = 9  # a tab and eight hex digits
_HEADER_START = json.dumps({"format": FORMAT}, separators=(",", ":"))[:-1].encode()
_HEX = re.compile(rb"[0-9a-f]{8}")


def verified(body: bytes) -> bytes | None:
    """The JSON of a checksummed line (given without its newline), or None when the line
    carries no checksum or its checksum does not match."""
    if len(body) <= _MARK or body[-_MARK] != 0x09 or not _HEX.fullmatch(body, len(body) - 8):
        return None
    payload = body[:-_MARK]
    return payload if crc32c(payload) == int(body[-8:], 16) else None


def salvage(line: bytes) -> list[bytes]:
    """The records still whole inside a damaged line. One flipped byte can turn a newline
    into something else and join two records on one line; each keeps its own checksum,
    so every stretch that ends in a mark and verifies is a record, whole and unchanged."""
    body = line[:-1] if line.endswith(b"\n") else line
    found: list[bytes] = []
    starts = [0]
    tab = body.find(b"\t")
    while tab != -1:
        end = tab + _MARK
        for start in starts:
            payload = verified(body[start:end])
            if payload is not None:
                found.append(payload)
                starts = []
                break
        starts.append(end + 1)  # past the byte that took the newline's place
        tab = body.find(b"\t", tab + 1)
    return found


def _as_header(payload: bytes) -> dict[str, Any] | None:
    try:
        header = json.loads(payload)
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("format") == FORMAT else None


def _check_version(segment: Path, header: dict[str, Any]) -> None:
    if header.get("version") not in READABLE_VERSIONS:
        raise CaptureError(
            f"{segment}: capture format version {header.get('version')} "
            f"is not supported (this version reads {', '.join(map(str, READABLE_VERSIONS))})"
        )


@dataclass
class _Opening:
    """What a segment's first line says: its header (None where damaged), whether its
    records carry checksums, and records a damaged newline joined to the header."""

    header: dict[str, Any] | None
    checked: bool
    joined: list[bytes]


_LOOKAHEAD = 3  # lines read past a damaged header to see whether records follow


def _open_segment(segment: Path, first: bytes, ahead: list[bytes], warn: Warn) -> _Opening:
    """What the first line says, given the next few lines (``ahead``): one damaged byte
    can split the header in two, so the records to recover by may start a line later."""
    torn = not first.endswith(b"\n")
    if torn and not ahead and first[: len(_HEADER_START)] == _HEADER_START[: len(first)]:
        # A writer stopped while it wrote a new segment's header: nothing to lose.
        warn(f"{segment}: torn header and no record: segment skipped")
        return _Opening(None, True, [])
    body = first[:-1] if first.endswith(b"\n") else first
    payload = verified(body)
    if payload is not None:
        header = _as_header(payload)
        if header is None:
            raise CaptureError(f"{segment} is not a shadow-replay capture segment")
        _check_version(segment, header)
        return _Opening(header, True, [])
    header = _as_header(body)
    if header is not None:  # version 1: no checksums
        _check_version(segment, header)
        if header["version"] == 1:
            return _Opening(header, False, [])
    pieces = salvage(first)
    if pieces and (header := _as_header(pieces[0])) is not None:
        _check_version(segment, header)
        warn(f"{segment}: the header's newline is damaged; the records joined to it recovered")
        return _Opening(header, True, pieces[1:])
    if pieces or any(salvage(line) for line in ahead):
        warn(f"{segment}: damaged header skipped; its records are read by their checksums")
        return _Opening(None, True, pieces)
    raise CaptureError(f"{segment} is not a shadow-replay capture segment")


def read_header(segment: Path, warn: Warn | None = None) -> dict[str, Any] | None:
    """A segment's header; None where it is damaged but its records are readable."""
    try:
        with segment.open("rb") as handle:
            first = handle.readline()
            ahead = _read_ahead(handle)
    except OSError as exc:
        raise CaptureError(f"cannot read {segment}: {exc.strerror}") from exc
    return _open_segment(segment, first, ahead, warn or _log_warning).header


def _read_ahead(handle: IO[bytes]) -> list[bytes]:
    lines = []
    for _ in range(_LOOKAHEAD):
        line = handle.readline()
        if not line:
            break
        lines.append(line)
    return lines


def capture_meta(folder: Path | str) -> dict[str, Any]:
    """The header of the capture's first segment (its writer, source, options); the next
    readable one where that header is damaged, and {} where every header is."""
    for segment in segments(folder):
        header = read_header(segment.path)
        if header is not None:
            return header
    return {}


def _segment_lines(segment: Path, warn: Warn) -> Iterator[tuple[int, bytes]]:
    """The complete record lines of a segment, with their offsets: each record's JSON and
    a newline, its checksum verified and removed where the segment has checksums."""
    try:
        handle = segment.open("rb")
    except OSError as exc:
        raise CaptureError(f"cannot read {segment}: {exc.strerror}") from exc
    with handle:
        first = handle.readline()
        ahead = _read_ahead(handle)
        opening = _open_segment(segment, first, ahead, warn)
        for joined in opening.joined:
            yield 0, joined + b"\n"
        offset = len(first)
        for raw in itertools.chain(ahead, handle):
            if not raw.endswith(b"\n"):
                recovered = salvage(raw) if opening.checked else []
                warn(
                    f"{segment}: torn last record at offset {offset} ignored "
                    "(the writer was stopped mid-line)"
                    if not recovered
                    else f"{segment}: the last record's newline is missing at offset {offset}"
                )
                for piece in recovered:
                    yield offset, piece + b"\n"
                return
            if not opening.checked:
                yield offset, raw
            elif (payload := verified(raw[:-1])) is not None:
                yield offset, payload + b"\n"
            else:
                recovered = salvage(raw)
                note = f"; {len(recovered)} joined to it recovered" if recovered else ""
                warn(
                    f"{segment}: damaged record at offset {offset} skipped "
                    f"(its checksum does not match){note}"
                )
                for piece in recovered:
                    yield offset, piece + b"\n"
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
