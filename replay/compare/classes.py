"""Query classes: judged statements grouped by fingerprint, with pandas.

A class's verdict is the worst verdict among its statements, with two refinements:

- noise downgrades: when some statements of a class differ between the two baselines,
  its ``changed`` statements are not evidence against the migration either, and the
  class is ``noisy``;
- ``slower`` is a property of the class, not of one execution: a class whose other
  verdicts are harmless is ``slower`` when its *median* candidate latency exceeds the
  slower baseline's by the thresholds' factor and margin. One slow execution is jitter,
  and so is any gap no larger than what the two baselines of the run differ by
  (:func:`baseline_jitter`): on a busy machine a sub-millisecond COMMIT takes a few
  milliseconds on one target and not the other, whatever the migration.

Statements that only failed because an earlier statement of their transaction failed
(``cascade_of``) are not a class of their own: they are counted as ``cascaded`` on the
class of that first failure, and as broken traffic when that failure breaks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from replay.compare.accumulate import Accumulator
from replay.compare.findings import Latency, Outcome, QueryClass
from replay.compare.sketch import QuantileSketch
from replay.compare.state import UNSENT, ClassState
from replay.compare.verdict import BREAKING, Thresholds, Verdict
from replay.sql.fingerprint import normalize

_OUTCOME_KEYS = ("status", "sqlstate", "message", "tag", "rows", "columns", "digest", "duration")


def native(value: Any) -> Any:
    """A JSON-ready Python value for a pandas/numpy cell (NaN and NA become ``None``)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        return native(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def iso_time(seconds: float | None) -> str | None:
    """A capture timestamp (epoch seconds) as ISO 8601 UTC with milliseconds."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="milliseconds")


def outcome_of(row: Mapping[str, Any], target: str) -> Outcome | None:
    """One target's answer in a row, or ``None`` when the run had no such target."""
    if native(row.get(f"{target}_status")) is None:
        return None
    outcome: Outcome = {key: native(row.get(f"{target}_{key}")) for key in _OUTCOME_KEYS}
    if outcome["rows"] is not None:
        outcome["rows"] = int(outcome["rows"])
    outcome["columns"] = json.loads(outcome["columns"] or "[]")
    if outcome["duration"] is not None:  # None: not timed (sent pipelined)
        outcome["duration"] = round(float(outcome["duration"]), 6)
    sample = native(row.get(f"{target}_sample"))
    if sample is not None:
        outcome["sample"] = sample
    return outcome


def column_diff(baseline: list[list[Any]], candidate: list[list[Any]]) -> dict[str, Any]:
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


def _class_verdict(
    counts: dict[str, int], latency: Latency, reference: float, limits: Thresholds
) -> Verdict:
    present = sorted((Verdict(v) for v in counts), key=lambda v: -v.severity)
    worst = next((v for v in present if v is not Verdict.SLOWER), Verdict.OK)
    if worst is Verdict.CHANGED and Verdict.NOISY in present:
        return Verdict.NOISY
    if worst in BREAKING:
        return worst
    slower = latency.candidate_median > limits.slower_factor * reference and (
        latency.candidate_median - reference > limits.slower_min_seconds
    )
    return Verdict.SLOWER if slower else worst


def _example(row: Mapping[str, Any]) -> dict[str, Any]:
    params = native(row.get("params"))
    example: dict[str, Any] = {
        "session": str(row["session"]),
        "seq": int(row["seq"]),
        "time": iso_time(native(row.get("start"))),
        "sql": str(row["sql"]),
        "params": list(params) if params is not None else [],
        "protocol": native(row.get("protocol")),
        "application_name": native(row.get("application_name")) or "",
        "verdict": native(row["verdict"]),
    }
    for target in ("baseline", "candidate", "baseline2"):
        outcome = outcome_of(row, target)
        if outcome is not None:
            example[target] = outcome
    return example


def _examples(state: ClassState, verdict: Verdict, max_examples: int) -> list[dict[str, Any]]:
    """The class's first statements (by start, session, seq) of the verdict it got.

    ``noisy`` also shows its ``changed`` statements; a ``slower`` class with no slow
    statement shows any compared one; failing all that, any statement.
    """
    wanted = {str(verdict)}
    if verdict is Verdict.NOISY:
        wanted.add(str(Verdict.CHANGED))
    picked = [e for key in wanted for e in state.examples.get(key, [])]
    if verdict is Verdict.SLOWER and not picked:
        picked = [e for key, kept in state.examples.items() if key != UNSENT for e in kept]
    if not picked:
        picked = [e for kept in state.examples.values() for e in kept]
    picked.sort(key=lambda example: example[0])
    return [_example(row) for _, row in picked[:max_examples]]


def _latency(state: ClassState) -> tuple[Latency, float]:
    """Latency of the statements both sides answered, and the baselines' reference median."""
    if not state.candidate.count:
        return Latency(), 0.0
    latency = Latency(
        baseline_median=round(state.baseline.median(), 6),
        baseline_p95=round(state.baseline.quantile(0.95), 6),
        candidate_median=round(state.candidate.median(), 6),
        candidate_p95=round(state.candidate.quantile(0.95), 6),
    )
    return latency, state.reference.median()


JITTER_QUANTILE = 0.99


def baseline_jitter(differences: QuantileSketch) -> float:
    """Seconds the two baselines' timings of one statement differ by, at the 99th percentile.

    Baseline and second baseline are the same database replaying the same statements at
    the same moment, so what separates their timings is the machine's jitter, the floor
    under which a candidate's being slower says nothing about the migration. 0 without
    a second baseline. ``differences`` holds ``|baseline - baseline2|`` of every
    statement both answered (see :class:`replay.compare.accumulate.Accumulator`).
    """
    jitter = differences.quantile(JITTER_QUANTILE)
    return 0.0 if math.isnan(jitter) else jitter


def query_classes(acc: Accumulator) -> list[QueryClass]:
    """One :class:`QueryClass` per fingerprint folded into ``acc``, worst first."""
    thresholds = acc.thresholds
    jitter = baseline_jitter(acc.jitter)
    if jitter > thresholds.slower_min_seconds:
        thresholds = replace(thresholds, slower_min_seconds=jitter)
    total = acc.statements
    classes: list[QueryClass] = []
    for fingerprint in sorted(acc.classes):
        state = acc.classes[fingerprint]
        counts = {k: n for k, n in sorted(state.verdicts.items()) if k != UNSENT and n}
        latency, reference = _latency(state)
        verdict = _class_verdict(counts, latency, reference, thresholds)
        examples = _examples(state, verdict, acc.max_examples)
        affected = str(verdict) if verdict is not Verdict.OK else None
        sessions = state.affected_sessions.get(affected) if affected else None
        first = examples[0] if examples else {}
        query_class = QueryClass(
            fingerprint=fingerprint,
            sql=first.get("sql", ""),
            normalized=normalize(first.get("sql", "")),
            verdict=verdict,
            count=state.count,
            share=round(state.count / total, 6) if total else 0.0,
            statement_verdicts=counts,
            broken=sum(counts.get(str(v), 0) for v in BREAKING) if verdict in BREAKING else 0,
            cascaded=acc.cascades.counts.get(fingerprint, 0),
            unsent=state.verdicts.get(UNSENT, 0),
            sessions=state.sessions.count(),
            affected_sessions=sessions.count() if sessions else 0,
            applications=sorted(state.applications),
            affected_applications=sorted(
                state.affected_applications.get(affected, set()) if affected else set()
            ),
            first_seen=iso_time(native(state.first)),
            last_seen=iso_time(native(state.last)),
            latency=latency,
            baseline=first.get("baseline") or {},
            candidate=first.get("candidate") or {},
            examples=examples,
        )
        if verdict is Verdict.SHAPE:
            query_class.column_diff = column_diff(
                query_class.baseline.get("columns", []), query_class.candidate.get("columns", [])
            )
        classes.append(query_class)
    classes.sort(key=lambda c: (-c.verdict.severity, -c.count, c.fingerprint))
    return classes


def broken_statements(classes: list[QueryClass]) -> int:
    """Statements that broke: those of breaking classes plus the failures they cascaded."""
    return sum(c.broken + c.cascaded for c in classes if c.verdict in BREAKING)
