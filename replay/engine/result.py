"""What a target answered, reduced to a :class:`replay.model.outcomes.TargetOutcome`.

Rows are digested from libpq's raw values (text or binary, as the statement asked for
them), which rebuilds the DataRow bodies the capture digested on the wire, so a target
returning the rows production returned gives the captured digest too.
"""

from __future__ import annotations

import json

from psycopg import pq

from replay.model.outcomes import TargetOutcome
from replay.wire import messages
from replay.wire.digest import RowDigest
from replay.wire.messages import parse_values, rows_from_tag

ExecStatus = pq.ExecStatus
DiagnosticField = pq.DiagnosticField

# statement_timeout and our own cancel give 57014, lock_timeout 55P03
# (PostgreSQL docs, Appendix A: query_canceled, lock_not_available).
TIMEOUT_SQLSTATES = frozenset({"57014", "55P03"})
IN_FAILED_TRANSACTION = "25P02"
SAMPLE_ROWS = 20


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def columns_text(columns: list[tuple[bytes, int]]) -> str:
    """Columns as (name bytes, type OID) written as :attr:`TargetOutcome.columns` is: a
    compact JSON list of ``[name, type_oid]``, names decoded as text with "replace"."""
    shown = [[name.decode("utf-8", "replace"), oid] for name, oid in columns]
    return json.dumps(shown, separators=(",", ":"), ensure_ascii=False)


_COLUMNS: dict[tuple[object, ...], str] = {}
_COLUMNS_LIMIT = 4096


def columns_json(result: pq.abc.PGresult) -> str:
    """The result's columns as :func:`columns_text` (cached per shape)."""
    fields = range(result.nfields)
    key = (*(result.fname(i) for i in fields), *(result.ftype(i) for i in fields))
    shown = _COLUMNS.get(key)
    if shown is None:
        shown = columns_text([(result.fname(i) or b"", result.ftype(i)) for i in fields])
        if len(_COLUMNS) >= _COLUMNS_LIMIT:
            _COLUMNS.clear()
        _COLUMNS[key] = shown
    return shown


# Values that replace some columns of a result: (column positions, per row the values
# of those columns), from replay.engine.formats.
Replaced = tuple[tuple[int, ...], list[list[bytes | None]]]


def digest_rows(
    result: pq.abc.PGresult, digest: RowDigest, replaced: Replaced | None = None
) -> list[list[str | None]]:
    """Digest every row; return the first SAMPLE_ROWS as text, for a report's row diff."""
    fields = range(result.nfields)
    get = result.get_value
    sample: list[list[str | None]] = []
    binary = [result.fformat(col) == 1 for col in fields]
    columns, rows = replaced if replaced is not None else ((), [])
    for col in columns:
        binary[col] = True
    for row in range(result.ntuples):
        values = [get(row, col) for col in fields]
        if columns:
            for col, value in zip(columns, rows[row], strict=True):
                values[col] = value
        digest.add_values(values)
        if row < SAMPLE_ROWS:
            sample.append([_shown(v, b) for v, b in zip(values, binary, strict=True)])
    return sample


def _shown(value: bytes | None, binary: bool) -> str | None:
    if value is None:
        return None
    return "\\x" + value.hex() if binary else value.decode("utf-8", "replace")


def sample_rows(bodies: list[bytes], binary: tuple[bool, ...]) -> list[list[str | None]]:
    """DataRow bodies as the text sample a report's row diff shows."""
    sample: list[list[str | None]] = []
    for body in bodies:
        values, _ = parse_values(body)
        flags = binary + (False,) * (len(values) - len(binary))
        sample.append([_shown(v, b) for v, b in zip(values, flags, strict=False)])
    return sample


def keep_samples_where_rows_differ(outcomes: dict[str, TargetOutcome]) -> None:
    """Drop the sample rows unless the targets' rows differ: only a finding needs them,
    and outcomes.jsonl should not carry every result twice."""
    digests = {o.digest for o in outcomes.values() if o.status == "ok"}
    differ = len(digests) > 1
    for outcome in outcomes.values():
        if not differ:
            outcome.sample = None
        elif outcome.raw_sample is not None:
            outcome.sample = sample_rows(*outcome.raw_sample)
        outcome.raw_sample = None


def failed_outcome(sqlstate: str | None, message: str, duration: float | None) -> TargetOutcome:
    """An ErrorResponse's outcome: a timeout for the SQLSTATEs of our timeouts."""
    return TargetOutcome(
        status="timeout" if sqlstate in TIMEOUT_SQLSTATES else "error",
        sqlstate=sqlstate,
        message=message,
        duration=duration,
    )


def error_outcome(result: pq.abc.PGresult, duration: float) -> TargetOutcome:
    sqlstate = _text(result.error_field(DiagnosticField.SQLSTATE))
    message = _text(result.error_field(DiagnosticField.MESSAGE_PRIMARY))
    if message is None:
        message = (_text(result.error_message) or "").strip()
    return failed_outcome(sqlstate, message, duration)


def outcome_of(
    result: pq.abc.PGresult,
    duration: float,
    copied: RowDigest | None = None,
    replaced: Replaced | None = None,
) -> TargetOutcome:
    """The outcome one result stands for; ``copied`` holds the rows of a COPY TO STDOUT,
    ``replaced`` the values of columns converted to binary afterwards."""
    status = result.status
    if status == ExecStatus.FATAL_ERROR:
        return error_outcome(result, duration)
    tag = _text(result.command_status) or ""
    if status == ExecStatus.TUPLES_OK:
        digest = RowDigest()
        sample = digest_rows(result, digest, replaced)
        return TargetOutcome(
            sample=sample,
            status="ok",
            tag=tag,
            rows=result.ntuples,
            columns=columns_json(result),
            digest=digest.ordered,
            digest_unordered=digest.unordered,
            duration=duration,
        )
    outcome = TargetOutcome(status="ok", tag=tag, rows=rows_from_tag(tag), duration=duration)
    if copied is not None:
        outcome.digest, outcome.digest_unordered = copied.ordered, copied.unordered
    return outcome


def lost_outcome(message: str, duration: float = 0.0) -> TargetOutcome:
    return TargetOutcome(
        status="lost", message=message.strip() or "connection lost", duration=duration
    )


def skipped_outcome(reason: str) -> TargetOutcome:
    return TargetOutcome(status="skipped", message=reason)


def ends_connection(result: pq.abc.PGresult) -> bool:
    """Whether an error came with the end of its connection (the rule:
    :func:`replay.wire.messages.ends_connection`)."""
    severity = result.error_field(DiagnosticField.SEVERITY_NONLOCALIZED) or result.error_field(
        DiagnosticField.SEVERITY
    )
    sqlstate = result.error_field(DiagnosticField.SQLSTATE)
    return messages.ends_connection(_text(severity) or "", _text(sqlstate) or "")
