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

import orjson

from replay.capture.format import Warn, capture_meta, read_raw
from replay.model.records import Session, Statement
from replay.model.selection import Selection


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
        self._open: OrderedDict[Path, IO[bytes]] = OrderedDict()

    def get(self, path: Path) -> IO[bytes]:
        handle = self._open.pop(path, None)
        if handle is None:
            handle = path.open("ab")
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


def _dump(obj: dict[str, object]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


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
    # Statement lines are copied as the capture has them (a batch's text stays with its
    # first statement, as read_statements expects): decoding each into a Statement and
    # encoding it again cost more than the rest of the split.
    try:
        for obj, raw in read_raw(capture, warn):
            kind = obj["type"]
            if kind == "statement":
                session_id, start = obj["session"], obj["start"]
                if not selection.wants_at(
                    start, obj["sql"], _application(open_sessions, session_id)
                ):
                    continue
                state = open_sessions.get(session_id)
                if state is None:  # its Session record is missing: replay it plainly
                    state = open_sessions[session_id] = _OpenSession(
                        Session(id=session_id, start=start)
                    )
                if state.path is None:
                    state.path = folder / f"session-{len(order):08d}.jsonl"
                    state.first = start
                    order.append(SessionFile(start, state.path))
                    handles.get(state.path).write(_dump(state.session.to_json()))
                handles.get(state.path).write(raw)
                count += 1
                first = start if first is None else min(first, start)
                last = start if last is None else max(last, start)
            elif kind == "session":
                try:
                    session = Session.from_json(obj)
                except TypeError as exc:
                    if warn is not None:
                        warn(f"unreadable session record skipped ({exc})")
                    continue
                open_sessions[session.id] = _OpenSession(session)
                if session.database:
                    databases.add(session.database)
            elif kind == "session_end":
                ended = open_sessions.pop(obj["id"], None)
                if ended is not None and ended.path is not None:
                    handles.close(ended.path)
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
    with path.open("rb") as handle:
        handle.readline()
        for line in handle:
            statement = Statement.from_json(orjson.loads(line))
            # On disk a batch's text is written with its first statement only.
            if statement.batch is not None:
                batch = statement.batch
            elif statement.batch_index > 0:
                statement.batch = batch
            yield statement
