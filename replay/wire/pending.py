"""What the tracker remembers between a client message and the server's answer.

The server answers client messages strictly in order (Protocol 55.2.4, Pipelining), so
the tracker keeps one :class:`Pending` per message that expects an answer, in a queue.
An executing message (Execute, a Query's current statement, FunctionCall) owns a
:class:`Result`, the statement record under construction with its row digest and COPY
data. Prepared statements and portals are the server-side objects that Bind and
Execute refer to by name.
"""

from __future__ import annotations

from replay.model.records import ErrorInfo, Statement, encode_bytes
from replay.wire.digest import RowDigest
from replay.wire.messages import rows_from_tag

# Kinds of pending items.
PARSE, BIND, DESCRIBE, EXECUTE, CLOSE, SYNC, QUERY, FUNCTION = range(8)


class Prepared:
    """A prepared statement as Parse created it."""

    __slots__ = ("columns", "note", "param_types", "sql")

    def __init__(self, sql: str, param_types: list[int], note: str = "") -> None:
        self.sql = sql
        self.param_types = param_types
        self.note = note
        self.columns: list[tuple[str, int]] = []


class Portal:
    """A portal as Bind created it: a prepared statement with its parameter values."""

    __slots__ = (
        "columns",
        "param_formats",
        "params",
        "prepared",
        "result_formats",
        "statement_name",
    )

    def __init__(
        self,
        prepared: Prepared | None,
        statement_name: str,
        params: list[str | None],
        param_formats: list[int],
        result_formats: list[int],
    ) -> None:
        self.prepared = prepared
        self.statement_name = statement_name
        self.params = params
        self.param_formats = param_formats
        self.result_formats = result_formats
        # Set by a Describe of the portal; else the statement's Describe applies.
        self.columns: list[tuple[str, int]] = []

    def result_columns(self) -> list[tuple[str, int]]:
        if self.columns or self.prepared is None:
            return self.columns
        return self.prepared.columns


class Result:
    """A statement being executed: the record, its rows and its COPY data."""

    __slots__ = ("copy", "copy_cap", "copy_over", "digest", "has_rows", "rows", "statement")

    def __init__(self, statement: Statement, digest_rows: bool, copy_cap: int) -> None:
        self.statement = statement
        self.digest: RowDigest | None = RowDigest() if digest_rows else None
        self.rows = 0
        self.has_rows = False
        self.copy: bytearray | None = None
        self.copy_cap = copy_cap
        self.copy_over = False

    def row(self, body: bytes) -> None:
        self.rows += 1
        self.has_rows = True
        if self.digest is not None:
            self.digest.add_datarow(body)

    def add_copy(self, data: bytes) -> None:
        if self.copy_over:
            return
        if self.copy is None:
            self.copy = bytearray()
        if len(self.copy) + len(data) > self.copy_cap:
            # Past the cap the data is dropped, not truncated: a partial COPY cannot be
            # replayed faithfully, and memory stays bounded per connection.
            self.copy = None
            self.copy_over = True
            return
        self.copy += data

    def finish(
        self, end: float, tag: str | None, error: ErrorInfo | None = None, note: str = ""
    ) -> Statement:
        """Fill the outcome fields of the record and return it."""
        st = self.statement
        st.duration = max(0.0, end - st.start)
        st.tag = tag
        st.error = error
        st.rows = rows_from_tag(tag) if tag else None
        if st.rows is None and self.has_rows:
            st.rows = self.rows
        if self.has_rows and self.digest is not None:
            st.digest = self.digest.ordered
            st.digest_unordered = self.digest.unordered
        if self.copy is not None:
            st.copy_data = encode_bytes(bytes(self.copy))
        if self.copy_over:
            st.replayable = False
            add_note(st, "copy data over cap")
        if note:
            add_note(st, note)
        return st


def add_note(statement: Statement, note: str) -> None:
    statement.note = f"{statement.note}; {note}" if statement.note else note


class Pending:
    """One client message waiting for its answer."""

    __slots__ = ("kind", "name", "previous", "result", "target", "ts")

    def __init__(self, kind: int, ts: float = 0.0, result: Result | None = None) -> None:
        self.kind = kind
        self.ts = ts
        self.result = result
        self.name = ""
        # Parse/Close of a statement: the map entry before this message, restored when
        # the server never ran the message (it skipped it after an error).
        self.previous: Prepared | None = None
        # Describe: the statement or portal whose columns the answer describes;
        # Bind: the portal it creates.
        self.target: Prepared | Portal | None = None


class QueryPending(Pending):
    """A simple-protocol Query: one result per statement of its string."""

    __slots__ = ("batch", "failed", "index", "redacted", "sql", "statements")

    def __init__(
        self, ts: float, sql: str, statements: list[tuple[str, int, int]], redacted: bool
    ) -> None:
        super().__init__(QUERY, ts)
        self.sql = sql
        self.statements = statements
        self.redacted = redacted
        self.batch = sql if len(statements) > 1 else None
        self.index = 0
        # After an error the rest of the string is not executed (Protocol 55.2.2).
        self.failed = False
