"""Per-column result formats through libpq, which takes one format for every column.

A Bind carries a result format per column (PostgreSQL docs 55.7, Bind): JDBC, for
one, asks binary for the types it decodes itself and text for the others. The
pipelined connection sends the captured Bind as it was; libpq's PQsendQueryParams /
PQsendQueryPrepared (the only way to a TLS or GSS-encrypted target) take a single
``resultFormat``. So that a statement's rows digest the same on both connections:

1. the statement is executed once, asking text for every column (any type has a text
   output; asking binary could fail on a type without a binary one, which the
   application never asked binary for);
2. the columns the application asked binary for are converted on the same connection
   with a query that has no effect: ``VALUES ($1, ...), ...`` with the text values as
   parameters declared with the columns' type OIDs, answered in binary. The server
   reads each text with the type's input function and writes it with its send
   function, which gives the bytes the statement would have sent in binary: text
   output is made to be read back exactly (what pg_dump relies on).

Only built-in types are converted, as psycopg's registry of them knows them (their
text output reads back without error, and an error here would abort the session's
open transaction); a column of another type (an extension's, a domain, an anonymous
record) stays text, and the outcome says so in
its ``message``: its digest can then differ from a plaintext target's. One known
limit of the round trip: ``float4``/``float8`` under ``extra_float_digits`` below 1
print rounded, so their binary differs (the default, 1, and JDBC's 3 are exact).
"""

from __future__ import annotations

from typing import NamedTuple

from psycopg import postgres, pq

from replay.engine.result import outcome_of
from replay.model.outcomes import TargetOutcome

# Built-in types (and their arrays) psycopg knows, but not those whose text input does
# not read their output back: record (an anonymous composite has no input), gtsvector.
_NOT_CONVERTED = frozenset({"record", "gtsvector"})
# The most parameters one conversion query binds (the protocol's limit is 65535).
MAX_PARAMS = 32767


class Formats(NamedTuple):
    """How libpq asks for a statement's results: one format, then which columns (by
    position) are converted to binary afterwards."""

    asked: int
    binary_columns: tuple[int, ...] = ()


TEXT = Formats(0)
BINARY = Formats(1)


def libpq_formats(result_formats: list[int]) -> Formats:
    """What to ask libpq for, given the Bind's result format codes: none (all text),
    one (for every column), or one per column."""
    if not result_formats:
        return TEXT
    first = result_formats[0]
    if all(code == first for code in result_formats):
        return BINARY if first == 1 else TEXT
    return Formats(0, tuple(i for i, code in enumerate(result_formats) if code == 1))


def convertible(type_oid: int) -> bool:
    """Whether a column of this type is converted from text to binary (see above)."""
    info = postgres.types.get(type_oid)  # the type, or the element type of an array
    return info is not None and info.name not in _NOT_CONVERTED


class Conversion(NamedTuple):
    """One conversion query: its SQL, parameter values and types, for rows
    ``first`` to ``first + rows``."""

    sql: bytes
    values: list[bytes | None]
    types: list[int]
    first: int
    rows: int


def conversions(columns: list[list[bytes | None]], types: list[int]) -> list[Conversion]:
    """The queries that convert ``columns`` (each a list of text values, one per row, of
    the type in ``types``) to binary, in row order, as few as the parameter limit
    allows."""
    count = len(columns[0]) if columns else 0
    width = len(columns)
    per_query = max(1, MAX_PARAMS // max(1, width))
    queries = []
    for first in range(0, count, per_query):
        rows = min(per_query, count - first)
        tuples = []
        values: list[bytes | None] = []
        for row in range(first, first + rows):
            base = len(values)
            tuples.append("(" + ", ".join(f"${base + k + 1}" for k in range(width)) + ")")
            values.extend(column[row] for column in columns)
        sql = ("VALUES " + ", ".join(tuples)).encode()
        queries.append(Conversion(sql, values, types * rows, first, rows))
    return queries


class Converting:
    """A statement's result held while its binary columns are converted."""

    def __init__(self, result: pq.abc.PGresult, duration: float, columns: tuple[int, ...]):
        self.result = result
        self.duration = duration
        present = [c for c in columns if c < result.nfields]
        self.columns = tuple(c for c in present if convertible(result.ftype(c)))
        self.kept_text = tuple(c for c in present if c not in self.columns)
        self.rows: list[list[bytes | None]] = []  # per row, the converted columns' values
        self.failed = ""

    def queries(self) -> list[Conversion]:
        if not self.columns or not self.result.ntuples:
            return []
        result = self.result
        get = result.get_value
        texts = [[get(row, col) for row in range(result.ntuples)] for col in self.columns]
        return conversions(texts, [result.ftype(col) for col in self.columns])

    def take(self, converted: pq.abc.PGresult) -> None:
        """The binary rows of one conversion query, in order."""
        get = converted.get_value
        width = converted.nfields
        rows = range(converted.ntuples)
        self.rows.extend([get(row, col) for col in range(width)] for row in rows)

    def fail(self, message: str) -> None:
        self.failed = message

    def outcome(self) -> TargetOutcome:
        """The statement's outcome, with the converted values where there are all."""
        complete = not self.failed and len(self.rows) == self.result.ntuples
        replaced = (self.columns, self.rows) if complete and self.columns else None
        outcome = outcome_of(self.result, self.duration, None, replaced)
        text = self.kept_text if replaced is not None else self.kept_text + self.columns
        if text:
            reason = f" ({self.failed})" if self.failed else ""
            shown = ", ".join(str(c + 1) for c in sorted(text))
            outcome.message = (
                f"result columns {shown} asked in binary came in text over libpq{reason}"
            )
        return outcome
