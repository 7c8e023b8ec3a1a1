"""Small captures for the replay tests, written through the real capture writer.

The capture proxy records these records from live traffic; here they are written by
hand so a test states exactly what the application sent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.capture.format import CaptureWriter
from replay.model.records import Record, Session, SessionEnd, Statement, encode_param

INT4 = 23
TEXT = 25


def int4(value: int) -> bytes:
    return struct.pack("!i", value)


@dataclass
class SessionScript:
    """The statements one captured connection sent, in order."""

    id: str
    start: float = 1_700_000_000.0
    database: str = "app"
    application_name: str = "shop"
    # The role the replay logs in as: "" (unknown) replays as the target URL's user,
    # so a test needs no role of its own unless it is about roles.
    user: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    statements: list[Statement] = field(default_factory=list)

    def _add(self, sql: str, **fields: Any) -> Statement:
        seq = len(self.statements) + 1
        fields.setdefault("start", self.start + seq * 0.001)
        fields.setdefault("tx_status", "I")
        statement = Statement(session=self.id, seq=seq, sql=sql, **fields)
        self.statements.append(statement)
        return statement

    def simple(self, sql: str, **fields: Any) -> Statement:
        return self._add(sql, protocol="simple", **fields)

    def batch(self, text: str, parts: list[str], **fields: Any) -> list[Statement]:
        return [
            self._add(part, protocol="simple", batch=text, batch_index=i, **fields)
            for i, part in enumerate(parts)
        ]

    def extended(
        self,
        sql: str,
        params: list[bytes | None] = (),  # type: ignore[assignment]
        *,
        types: list[int] | None = None,
        formats: list[int] | None = None,
        name: str = "",
        **fields: Any,
    ) -> Statement:
        formats = formats or []
        encoded = [
            encode_param(value, bool(formats) and formats[min(i, len(formats) - 1)] == 1)
            for i, value in enumerate(params)
        ]
        return self._add(
            sql,
            protocol="extended",
            params=encoded,
            param_types=types or [],
            param_formats=formats,
            statement_name=name,
            **fields,
        )

    def records(self) -> list[Record]:
        session = Session(
            id=self.id,
            start=self.start,
            user=self.user,
            database=self.database,
            application_name=self.application_name,
            parameters=dict(self.parameters),
        )
        end = SessionEnd(id=self.id, end=self.start + 60, statements=len(self.statements))
        return [session, *self.statements, end]


def write_capture(
    folder: Path,
    sessions: list[SessionScript],
    *,
    upstream: str | None = None,
    interleave: bool = True,
) -> Path:
    """Write the sessions as one capture, records interleaved across sessions."""
    meta = {"upstream": upstream} if upstream else {}
    streams = [s.records() for s in sessions]
    with CaptureWriter(folder, meta=meta, writer="test") as writer:
        if interleave:
            longest = max((len(s) for s in streams), default=0)
            for i in range(longest):
                for stream in streams:
                    if i < len(stream):
                        writer.write(stream[i])
        else:
            for stream in streams:
                for record in stream:
                    writer.write(record)
    return folder
