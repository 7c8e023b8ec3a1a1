"""Binary parameter values as text, by their type OID, for people to read in reports.

A Bind may carry a parameter in binary (asyncpg always does, psycopg in binary mode):
the capture keeps the exact bytes, base64-encoded, for the replay. A report shows them
as psql would print the value instead, decoded with psycopg's loader for the type OID
the client declared. An OID the client left unspecified (0) or that is not a built-in
type is shown as bytea is, in hex: the bytes are all we know.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

from psycopg.adapt import Transformer
from psycopg.postgres import types as builtin_types
from psycopg.pq import Format

from replay.model.records import decode_param, param_is_binary

_TRANSFORMER = Transformer()


def _as_psql(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def binary_as_text(data: bytes, oid: int) -> str:
    """One binary value as text; hex where the type is unknown or the bytes do not load."""
    if builtin_types.get(oid) is None:
        return "\\x" + data.hex()
    try:
        return _as_psql(_TRANSFORMER.get_loader(oid, Format.BINARY).load(data))
    except Exception:  # bytes that are not that type's binary form: show them as they are
        return "\\x" + data.hex()


def params_as_text(
    params: list[str | None], types: list[int], formats: list[int]
) -> list[str | None]:
    """Captured parameters (as :mod:`replay.model.records` stores them) as text: the text
    ones as they are, the binary ones decoded by the type OID the client declared."""
    shown: list[str | None] = []
    for index, value in enumerate(params):
        if value is None or not param_is_binary(formats, index):
            shown.append(value)
            continue
        data = decode_param(value, True) or b""
        oid = types[index] if index < len(types) else 0
        shown.append(binary_as_text(data, oid))
    return shown
