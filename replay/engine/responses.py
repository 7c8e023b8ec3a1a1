"""A target's answers read off the wire, for requests sent ahead of their answers.

The pipelined connection (:mod:`replay.engine.pipeline`) writes a session's requests
without waiting for each answer; the server still executes them one after the other
and answers in order (PostgreSQL docs 55.2.4, "Pipelining"), every request ending with
its ReadyForQuery. :class:`AnswerReader` splits the bytes that come back into messages
and folds them into the answer of the oldest request in flight: one
:class:`~replay.model.outcomes.TargetOutcome` per result (a multi-statement Query has
several), equal to what :mod:`replay.engine.result` makes of libpq's results. Rows are
digested as the DataRow bodies themselves, exactly as the capture digested them.

A duration is only measured for a request that was alone on its connection for its
whole flight: behind or ahead of others, the moment its answer is read says nothing
about how long the server took for it. Such outcomes carry ``duration=None``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from struct import Struct

from replay.engine.result import (
    IN_FAILED_TRANSACTION,
    SAMPLE_ROWS,
    columns_text,
    failed_outcome,
    lost_outcome,
)
from replay.model.outcomes import TargetOutcome
from replay.wire.digest import RowDigest
from replay.wire.messages import ends_connection, error_fields, row_fields, rows_from_tag

__all__ = ["IN_FAILED_TRANSACTION", "Answer", "AnswerReader", "Request"]

_LENGTH = Struct("!I")
_DATA_ROW = ord("D")
_COMMAND_COMPLETE = ord("C")
_READY_FOR_QUERY = ord("Z")
_ROW_DESCRIPTION = ord("T")


@dataclass(slots=True, eq=False)
class Request:
    """One captured statement's request: its bytes and what its answer needs."""

    data: bytes
    sql: str = ""
    copy_in: bytes | None = None  # the data a COPY FROM STDIN sends
    extended: bool = False  # a COPY in the extended protocol ends with a Sync of its own
    prepares: tuple[str, object] | None = None  # (name, key) its Parse (re)prepares
    exclusive: bool = False  # nothing else may be in flight with it
    sent: float = 0.0
    alone: bool = True  # the only request in flight from its sending to its answer
    parsed: bool = False  # its named Parse succeeded
    outcomes: list[TargetOutcome] = field(default_factory=list)


@dataclass(slots=True)
class Answer:
    """The complete answer to one request; ``lost`` when the connection broke first."""

    outcomes: list[TargetOutcome]
    tx_status: str  # I (idle), T (in a transaction), E (failed transaction), "" unknown
    request: Request | None = None
    lost: bool = False


def lost_answer(message: str, request: Request | None, now: float) -> Answer:
    outcomes = list(request.outcomes) if request is not None else []
    duration = now - request.sent if request is not None else 0.0
    outcomes.append(lost_outcome(message, duration))
    return Answer(outcomes, "", request, lost=True)


_COLUMNS: dict[bytes, tuple[str, tuple[bool, ...]]] = {}
_COLUMNS_LIMIT = 4096


def describe_columns(body: bytes) -> tuple[str, tuple[bool, ...]]:
    """A RowDescription body as :func:`replay.engine.result.columns_text` and which
    columns are binary (cached per body)."""
    known = _COLUMNS.get(body)
    if known is not None:
        return known
    fields = row_fields(body)
    columns = columns_text([(name, oid) for name, oid, _ in fields])
    known = (columns, tuple(fmt == 1 for _, _, fmt in fields))
    if len(_COLUMNS) >= _COLUMNS_LIMIT:
        _COLUMNS.clear()
    _COLUMNS[body] = known
    return known


class AnswerReader:
    """Folds the server's messages into the answers of the requests in flight."""

    def __init__(self) -> None:
        self.pending: deque[Request] = deque()
        self.copy_wanted: Request | None = None  # a COPY FROM STDIN waits for its data
        self.fatal: str | None = None  # the connection is ending, with this message
        self._buffer = b""
        self._mark = 0.0  # when the current request's previous result ended
        self._columns = "[]"
        self._binary: tuple[bool, ...] = ()
        self._digest: RowDigest | None = None
        self._copied: RowDigest | None = None
        self._sample: list[bytes] = []

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def add(self, request: Request, now: float) -> None:
        """A request went out: its answer is the next one after those already pending."""
        request.sent = now
        if self.pending:
            self.pending[-1].alone = False
            request.alone = False
        else:
            self._mark = now
        self.pending.append(request)

    def feed(self, data: bytes, now: float) -> list[Answer]:
        """Take bytes from the server; the answers they complete, oldest first."""
        buffer = self._buffer + data if self._buffer else data
        answers: list[Answer] = []
        pos, size = 0, len(buffer)
        length_at = _LENGTH.unpack_from
        while size - pos >= 5 and self.fatal is None:
            (length,) = length_at(buffer, pos + 1)
            end = pos + 1 + length
            if end > size:
                break
            kind = buffer[pos]
            # The messages of every answer inline (rows, their description, the command's
            # tag, ReadyForQuery); the others through _message.
            if kind == _DATA_ROW:
                digest = self._digest
                if digest is not None:
                    body = buffer[pos + 5 : end]
                    digest.add_datarow(body)
                    if len(self._sample) < SAMPLE_ROWS:
                        self._sample.append(body)
            elif kind == _COMMAND_COMPLETE:
                self._result(
                    self._complete(buffer[pos + 5 : end - 1].decode("utf-8", "replace"), now)
                )
            elif kind == _READY_FOR_QUERY:
                answer = self._ready(chr(buffer[pos + 5]) if length > 4 else "", now)
                if answer is not None:
                    answers.append(answer)
            elif kind == _ROW_DESCRIPTION:
                self._columns, self._binary = describe_columns(buffer[pos + 5 : end])
                self._digest, self._sample = RowDigest(), []
            else:
                self._message(buffer[pos : pos + 1], buffer[pos + 5 : end], now)
            pos = end
        self._buffer = buffer[pos:]
        return answers

    def _message(self, kind: bytes, body: bytes, now: float) -> None:
        if kind == b"E":
            self._error(body, now)
        elif kind == b"I":
            self._result(TargetOutcome(status="ok", tag="", duration=self._duration(now)))
        elif kind == b"1":
            if self.pending:
                self.pending[0].parsed = True
        elif kind == b"G":
            self.copy_wanted = self.pending[0] if self.pending else None
        elif kind == b"H":
            self._copied = RowDigest()
        elif kind == b"d":
            if self._copied is not None:
                self._copied.add_datarow(body)
        elif kind == b"W":
            self.fatal = "COPY BOTH (replication) is not replayed"
        # 2 3 n t s (Bind/Close complete, NoData, ParameterDescription, PortalSuspended),
        # c (CopyDone), N (notices), S (ParameterStatus), A (notifications): no outcome.

    def _duration(self, now: float) -> float | None:
        head = self.pending[0] if self.pending else None
        if head is None or not head.alone:
            return None
        duration, self._mark = now - self._mark, now
        return duration

    def _complete(self, tag: str, now: float) -> TargetOutcome:
        digest, copied = self._digest, self._copied
        self._digest = self._copied = None
        if digest is not None:
            sample, self._sample = self._sample, []
            outcome = TargetOutcome(
                status="ok",
                tag=tag,
                rows=digest.rows,
                columns=self._columns,
                digest=digest.ordered,
                digest_unordered=digest.unordered,
                duration=self._duration(now),
                sample=[],
            )
            if sample:  # made text only if the targets' rows differ (rarely)
                outcome.raw_sample = (sample, self._binary)
            return outcome
        outcome = TargetOutcome(
            status="ok", tag=tag, rows=rows_from_tag(tag), duration=self._duration(now)
        )
        if copied is not None:
            outcome.digest, outcome.digest_unordered = copied.ordered, copied.unordered
        return outcome

    def _error(self, body: bytes, now: float) -> None:
        self._digest = self._copied = None
        self.copy_wanted = None
        fields = error_fields(body)
        message = fields.get("M", "")
        if ends_connection(fields.get("V") or fields.get("S") or "", fields.get("C", "")):
            self.fatal = message or "connection terminated"
            return
        self._result(failed_outcome(fields.get("C"), message, self._duration(now)))

    def _result(self, outcome: TargetOutcome) -> None:
        if self.pending:
            self.pending[0].outcomes.append(outcome)

    def _ready(self, status: str, now: float) -> Answer | None:
        if not self.pending:
            return None  # not ours (nothing is in flight)
        request = self.pending.popleft()
        self._mark = now
        return Answer(request.outcomes, status, request)
