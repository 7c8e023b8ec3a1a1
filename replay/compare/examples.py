"""What a report shows of a statement: typed outcomes, examples and column diffs.

These are the shapes ``findings.json`` holds for a query class (see
:mod:`replay.compare.findings`): each is a ``TypedDict``, so that it is typed here and
written to JSON as it is, and the report code reads it as the mapping it always was.
They are made from flat outcome rows (:meth:`replay.model.outcomes.OutcomeRow.to_flat`),
only for the few statements a class keeps as examples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from replay.wire.values import params_as_text

TARGETS = ("baseline", "candidate", "baseline2")
# What a report shows of one text at most: a 200 MB statement must not make a 200 MB
# findings.json (or junit.xml, report.html). The whole text stays in outcomes.jsonl.
SHOWN_SQL = 16_000
SHOWN_VALUE = 2_000


def clip(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how much more there is."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text):,} characters; the whole text is in outcomes.jsonl]"


def _clip_value(value: Any) -> Any:
    return clip(value, SHOWN_VALUE) if isinstance(value, str) else value


class Outcome(TypedDict, total=False):
    """One target's answer as reports show it: status, sqlstate, message, tag, rows,
    columns (``[name, type_oid]`` pairs), digest, duration (seconds, ``None`` where not
    timed) and, where the targets' rows differ, a sample of the rows. Every key but
    ``sample`` is present in an outcome made by :func:`outcome_of`; a class with no
    example has the empty outcome ``{}``."""

    status: str
    sqlstate: str | None
    message: str | None
    tag: str | None
    rows: int | None
    columns: list[list[Any]]
    digest: str | None
    duration: float | None
    sample: list[list[str | None]]


class Example(TypedDict):
    """One statement a query class keeps to show, with each target's answer."""

    session: str
    seq: int
    time: str | None
    sql: str
    params: list[str | None]
    protocol: str | None
    application_name: str
    verdict: str | None  # None: not compared (a target lost or skipped it)
    baseline: NotRequired[Outcome]
    candidate: NotRequired[Outcome]
    baseline2: NotRequired[Outcome]


class Retyped(TypedDict):
    name: str
    baseline: Any
    candidate: Any


class ColumnDiff(TypedDict):
    """What changed between two result shapes."""

    added: list[list[Any]]
    dropped: list[list[Any]]
    retyped: list[Retyped]
    reordered: bool


def iso_time(seconds: float | None) -> str | None:
    """A capture timestamp (epoch seconds) as ISO 8601 UTC with milliseconds."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="milliseconds")


def outcome_of(row: Mapping[str, Any], target: str) -> Outcome | None:
    """One target's answer in a flat row, or ``None`` when the run had no such target."""
    get = row.get
    status = get(f"{target}_status")
    if status is None:
        return None
    rows, duration = get(f"{target}_rows"), get(f"{target}_duration")
    outcome: Outcome = {
        "status": status,
        "sqlstate": get(f"{target}_sqlstate"),
        "message": _clip_value(get(f"{target}_message")),
        "tag": get(f"{target}_tag"),
        "rows": int(rows) if rows is not None else None,
        "columns": json.loads(get(f"{target}_columns") or "[]"),
        "digest": get(f"{target}_digest"),
        # None: not timed (sent pipelined)
        "duration": round(float(duration), 6) if duration is not None else None,
    }
    sample = get(f"{target}_sample")
    if sample is not None:
        outcome["sample"] = [[_clip_value(v) for v in values] for values in sample]
    return outcome


def example_of(row: Mapping[str, Any], verdict: str | None) -> Example:
    """The example a flat outcome row makes, judged ``verdict``."""
    params = row.get("params")
    formats = row.get("param_formats")
    if params and formats:  # binary values shown as text, by their type
        params = params_as_text(params, row.get("param_types") or [], formats)
    example: Example = {
        "session": str(row["session"]),
        "seq": int(row["seq"]),
        "time": iso_time(row.get("start")),
        "sql": clip(str(row["sql"]), SHOWN_SQL),
        "params": [_clip_value(p) for p in params] if params is not None else [],
        "protocol": row.get("protocol"),
        "application_name": row.get("application_name") or "",
        "verdict": verdict,
    }
    for target in TARGETS:
        outcome = outcome_of(row, target)
        if outcome is not None:
            example[target] = outcome  # type: ignore[literal-required]
    return example


def column_diff(baseline: list[list[Any]], candidate: list[list[Any]]) -> ColumnDiff:
    """What changed between two result shapes (lists of ``[name, type_oid]``)."""
    before = {name: oid for name, oid in baseline}
    after = {name: oid for name, oid in candidate}
    common = [name for name, _ in baseline if name in after]
    return {
        "added": [[n, o] for n, o in candidate if n not in before],
        "dropped": [[n, o] for n, o in baseline if n not in after],
        "retyped": [
            {"name": n, "baseline": before[n], "candidate": after[n]}
            for n in common
            if before[n] != after[n]
        ],
        "reordered": common != [name for name, _ in candidate if name in before],
    }
