"""One streaming pass over a capture: each session's statements into a file of its own.

The replay needs a session's statements together, but a capture interleaves every
session. Splitting first keeps memory bounded by the sessions open at once in the
capture (each has one small state and, up to ``max_open``, an open file handle),
whatever the capture's length. The same pass applies the ``--since``/``--until``/
``--class`` filters and collects what the safety check needs: the databases the
captured sessions used.

A session file holds the Session record on its first line, then its selected
statements in captured order, as JSON lines (owner-only, in a private temp folder).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from replay.capture.format import Warn, capture_meta, read_records
from replay.records import Session, SessionEnd, Statement
from replay.selection import Selection


@dataclass(frozen=True, order=True)
class SessionFile:
    """A split session, ordered by its first selected statement's start."""

    first: float
    path: Path = field(compare=False)


@dataclass
class SplitCapture:
    """The result of the split: session files in replay order and capture facts."""

    folder: Path
    sessions: list[SessionFile]
    statements: int
    databases: frozenset[str]
    upstream: str | None
    first: float | None = None
    last: float | None = None


@dataclass
class _OpenSession:
    session: Session
    path: Path | None = None
    first: float | None = None


class _Handles:
    """At most ``limit`` open append handles, least recently used closed first."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._open: OrderedDict[Path, IO[str]] = OrderedDict()

    def get(self, path: Path) -> IO[str]:
        handle = self._open.pop(path, None)
        if handle is None:
            handle = path.open("a", encoding="utf-8")
            while len(self._open) >= self.limit:
                self._open.popitem(last=False)[1].close()
        self._open[path] = handle
        return handle

    def close(self, path: Path) -> None:
        handle = self._open.pop(path, None)
        if handle is not None:
            handle.close()

    def close_all(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()


def _dump(obj: dict[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"


def _application(sessions: dict[str, _OpenSession], session: str) -> str:
    state = sessions.get(session)
    return state.session.application_name if state is not None else ""


def split_capture(
    capture: Path | str,
    workdir: Path | str,
    *,
    selection: Selection | None = None,
    warn: Warn | None = None,
    max_open: int = 256,
) -> SplitCapture:
    """Split ``capture`` into per-session files under ``workdir`` (which must exist)."""
    selection = selection or Selection()
    meta = capture_meta(capture)
    folder = Path(workdir)
    open_sessions: dict[str, _OpenSession] = {}
    handles = _Handles(max_open)
    order: list[SessionFile] = []
    databases: set[str] = set()
    count = 0
    first: float | None = None
    last: float | None = None
    records = read_records(capture, warn)
    try:
        for record in records:
            if isinstance(record, Session):
                open_sessions[record.id] = _OpenSession(record)
                if record.database:
                    databases.add(record.database)
            elif isinstance(record, SessionEnd):
                state = open_sessions.pop(record.id, None)
                if state is not None and state.path is not None:
                    handles.close(state.path)
            elif isinstance(record, Statement) and selection.wants(
                record, _application(open_sessions, record.session)
            ):
                state = open_sessions.get(record.session)
                if state is None:  # its Session record is missing: replay it plainly
                    state = open_sessions[record.session] = _OpenSession(
                        Session(id=record.session, start=record.start)
                    )
                if state.path is None:
                    state.path = folder / f"session-{len(order):08d}.jsonl"
                    state.first = record.start
                    order.append(SessionFile(record.start, state.path))
                    handles.get(state.path).write(_dump(state.session.to_json()))
                handles.get(state.path).write(_dump(record.to_json()))
                count += 1
                first = record.start if first is None else min(first, record.start)
                last = record.start if last is None else max(last, record.start)
    finally:
        handles.close_all()
    order.sort()
    upstream = meta.get("upstream")
    return SplitCapture(
        folder=folder,
        sessions=order,
        statements=count,
        databases=frozenset(databases),
        upstream=str(upstream) if upstream else None,
        first=first,
        last=last,
    )


def read_session(path: Path) -> Session:
    """The Session record a split file opens with."""
    with path.open(encoding="utf-8") as handle:
        return Session.from_json(json.loads(handle.readline()))


def read_statements(path: Path) -> Iterator[Statement]:
    """Stream the statements of a split file, in captured order."""
    batch: str | None = None
    with path.open(encoding="utf-8") as handle:
        handle.readline()
        for line in handle:
            statement = Statement.from_json(json.loads(line))
            # On disk a batch's text is written with its first statement only.
            if statement.batch is not None:
                batch = statement.batch
            elif statement.batch_index > 0:
                statement.batch = batch
            yield statement
