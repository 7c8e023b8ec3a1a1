"""The records a capture is made of: sessions and the statements they executed.

These are the contract between the capture side (the wire tracker builds them from
protocol messages) and the replay side (the engine re-sends them). Each record maps to
one JSON object per line in a capture segment (see :mod:`replay.capture.format`);
``to_json``/``from_json`` are that mapping and nothing else.

Bytes that are not text (binary parameters, COPY data) are stored base64-encoded;
text-format parameters are stored as text, decoded as UTF-8 with ``surrogateescape`` so
that any byte sequence survives the round trip.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Protocol = Literal["simple", "extended", "function"]
TxStatus = Literal["I", "T", "E", ""]


def encode_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def decode_bytes(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii"))


def encode_param(value: bytes | None, binary: bool) -> str | None:
    if value is None:
        return None
    if binary:
        return encode_bytes(value)
    return value.decode("utf-8", "surrogateescape")


def decode_param(value: str | None, binary: bool) -> bytes | None:
    if value is None:
        return None
    if binary:
        return decode_bytes(value)
    return value.encode("utf-8", "surrogateescape")


def param_is_binary(formats: list[int], index: int) -> bool:
    """The format of parameter ``index`` as Bind states it (PostgreSQL docs 55.7, Bind):
    no codes means all text, one code applies to all, else one code per parameter."""
    if not formats:
        return False
    if len(formats) == 1:
        return formats[0] == 1
    return index < len(formats) and formats[index] == 1


@dataclass(slots=True)
class ErrorInfo:
    """An ErrorResponse, reduced to what identifies it."""

    sqlstate: str
    message: str
    severity: str = "ERROR"


@dataclass(slots=True)
class Session:
    """One client connection, as the startup message described it."""

    id: str
    start: float
    client: str = ""
    user: str = ""
    database: str = ""
    application_name: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    protocol: str = "3.0"

    def to_json(self) -> dict[str, Any]:
        return {"type": "session", **asdict(self)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Session:
        return cls(**{k: v for k, v in obj.items() if k != "type"})


@dataclass(slots=True)
class SessionEnd:
    """The end of a connection, and whether it was recorded to the end."""

    id: str
    end: float
    statements: int = 0
    recorded: bool = True
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": "session_end", **asdict(self)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SessionEnd:
        return cls(**{k: v for k, v in obj.items() if k != "type"})


@dataclass(slots=True)
class Statement:
    """One executed statement and what the production server answered.

    ``params`` holds the Bind values exactly as sent, encoded per :func:`encode_param`
    with the formats in ``param_formats`` (as sent in Bind: zero, one or one per value).
    ``param_types`` are the type OIDs the client declared in Parse (0 = unspecified).
    For the simple protocol, ``params`` is empty and ``sql`` is the single statement of
    the Query string this record stands for; ``batch`` then holds the whole Query string
    and ``batch_index`` this statement's position in it, because the server runs a
    multi-statement Query as one implicit transaction and replay must send it whole.
    On disk the batch text is written once, with its first statement; the capture
    reader gives it back to the later ones (see :mod:`replay.capture.format`).
    """

    session: str
    seq: int
    start: float
    sql: str
    protocol: Protocol = "simple"
    duration: float = 0.0
    params: list[str | None] = field(default_factory=list)
    param_types: list[int] = field(default_factory=list)
    param_formats: list[int] = field(default_factory=list)
    result_formats: list[int] = field(default_factory=list)
    statement_name: str = ""
    portal_name: str = ""
    max_rows: int = 0
    batch: str | None = None
    batch_index: int = 0
    # outcome as production answered it
    tag: str | None = None
    rows: int | None = None
    columns: list[tuple[str, int]] = field(default_factory=list)
    digest: str | None = None
    digest_unordered: str | None = None
    error: ErrorInfo | None = None
    tx_status: TxStatus = ""
    copy_data: str | None = None
    replayable: bool = True
    note: str = ""

    def param_bytes(self) -> list[bytes | None]:
        """The parameter values as the client sent them on the wire."""
        return [
            decode_param(v, param_is_binary(self.param_formats, i))
            for i, v in enumerate(self.params)
        ]

    def copy_bytes(self) -> bytes | None:
        return None if self.copy_data is None else decode_bytes(self.copy_data)

    def to_json(self) -> dict[str, Any]:
        # Built field by field (asdict deep-copies, which the recorder cannot afford) and
        # without defaults, to keep lines short: most statements have no error, no COPY.
        obj: dict[str, Any] = {
            "type": "statement",
            "session": self.session,
            "seq": self.seq,
            "start": self.start,
            "sql": self.sql,
        }
        for name, default in _STATEMENT_DEFAULTS.items():
            value = getattr(self, name)
            if value != default:
                obj[name] = value
        if self.error is not None:
            obj["error"] = asdict(self.error)
        if self.batch_index > 0:
            obj.pop("batch", None)  # written once, with the batch's first statement
        return obj

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Statement:
        data = dict(obj)  # the caller's object stays as it was
        data.pop("type", None)
        error = data.get("error")
        if error is not None:
            data["error"] = ErrorInfo(**error)
        columns = data.get("columns")
        if columns:
            data["columns"] = [(str(n), int(o)) for n, o in columns]
        return cls(**data)


_STATEMENT_DEFAULTS: dict[str, Any] = {
    "protocol": "simple",
    "duration": 0.0,
    "params": [],
    "param_types": [],
    "param_formats": [],
    "result_formats": [],
    "statement_name": "",
    "portal_name": "",
    "max_rows": 0,
    "batch": None,
    "batch_index": 0,
    "tag": None,
    "rows": None,
    "columns": [],
    "digest": None,
    "digest_unordered": None,
    "error": None,
    "tx_status": "",
    "copy_data": None,
    "replayable": True,
    "note": "",
}

Record = Session | SessionEnd | Statement


def record_from_json(obj: dict[str, Any]) -> Record:
    """The record a decoded JSON line stands for; KeyError/TypeError on a bad one."""
    kind = obj["type"]
    if kind == "statement":
        return Statement.from_json(obj)
    if kind == "session":
        return Session.from_json(obj)
    if kind == "session_end":
        return SessionEnd.from_json(obj)
    raise KeyError(f"unknown record type {kind!r}")
