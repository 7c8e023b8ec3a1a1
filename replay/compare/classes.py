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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from replay.compare.findings import Latency, Outcome, QueryClass
from replay.compare.verdict import BREAKING, Thresholds, Verdict, statement_verdicts
from replay.fingerprint import normalize

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


def outcome_of(row: pd.Series, target: str) -> Outcome | None:
    """One target's answer in a row, or ``None`` when the run had no such target."""
    if native(row.get(f"{target}_status")) is None:
        return None
    outcome: Outcome = {key: native(row.get(f"{target}_{key}")) for key in _OUTCOME_KEYS}
    if outcome["rows"] is not None:
        outcome["rows"] = int(outcome["rows"])
    outcome["columns"] = json.loads(outcome["columns"] or "[]")
    outcome["duration"] = round(float(outcome["duration"] or 0.0), 6)
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


def judge(frame: pd.DataFrame, thresholds: Thresholds) -> pd.DataFrame:
    """The frame with a ``verdict`` column and ``cascade`` flag, indexed from 0."""
    judged = frame.reset_index(drop=True).copy()
    judged["verdict"] = statement_verdicts(judged, thresholds)
    cascade = judged["cascade_of"] if "cascade_of" in judged.columns else None
    judged["cascade"] = cascade.notna() if cascade is not None else False
    return judged


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


def _latency(rows: pd.DataFrame) -> tuple[Latency, float]:
    """Latency of the statements both sides answered, and the baselines' reference median."""
    answered = rows[(rows["baseline_status"] == "ok") & (rows["candidate_status"] == "ok")]
    if answered.empty:
        return Latency(), 0.0
    base = pd.to_numeric(answered["baseline_duration"]).astype(float)
    cand = pd.to_numeric(answered["candidate_duration"]).astype(float)
    reference = base
    if "baseline2_duration" in answered.columns:
        base2 = pd.to_numeric(answered["baseline2_duration"]).astype(float)
        reference = pd.concat([base, base2.fillna(base)], axis=1).max(axis=1)
    latency = Latency(
        baseline_median=round(float(base.median()), 6),
        baseline_p95=round(float(base.quantile(0.95)), 6),
        candidate_median=round(float(cand.median()), 6),
        candidate_p95=round(float(cand.quantile(0.95)), 6),
    )
    return latency, float(reference.median())


def _example(row: pd.Series) -> dict[str, Any]:
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


def _examples(rows: pd.DataFrame, verdict: Verdict, max_examples: int) -> pd.DataFrame:
    wanted = {verdict}
    if verdict is Verdict.NOISY:
        wanted.add(Verdict.CHANGED)
    picked = rows[rows["verdict"].isin([str(v) for v in wanted])]
    if verdict is Verdict.SLOWER and picked.empty:
        picked = rows[rows["verdict"].notna()]
    if picked.empty:
        picked = rows
    return picked.sort_values(["start", "session", "seq"], kind="stable").head(max_examples)


JITTER_QUANTILE = 0.99


def baseline_jitter(judged: pd.DataFrame) -> float:
    """Seconds the two baselines' timings of one statement differ by, at the 99th percentile.

    Baseline and second baseline are the same database replaying the same statements at
    the same moment, so what separates their timings is the machine's jitter, the floor
    under which a candidate's being slower says nothing about the migration. 0 without
    a second baseline.
    """
    if "baseline2_duration" not in judged.columns:
        return 0.0
    both = (judged["baseline_status"] == "ok") & (judged["baseline2_status"] == "ok")
    if not both.any():
        return 0.0
    base = pd.to_numeric(judged.loc[both, "baseline_duration"], errors="coerce")
    base2 = pd.to_numeric(judged.loc[both, "baseline2_duration"], errors="coerce")
    jitter = (base - base2).abs().quantile(JITTER_QUANTILE)
    return 0.0 if pd.isna(jitter) else float(jitter)


def query_classes(
    judged: pd.DataFrame, total: int, thresholds: Thresholds, max_examples: int
) -> list[QueryClass]:
    """One :class:`QueryClass` per fingerprint of the non-cascaded rows of ``judged``."""
    jitter = baseline_jitter(judged)
    if jitter > thresholds.slower_min_seconds:
        thresholds = replace(thresholds, slower_min_seconds=jitter)
    own = judged[~judged["cascade"]]
    cascaded = _cascaded_per_class(judged)
    stats = own.groupby("fingerprint", sort=True).agg(
        count=("seq", "size"),
        sessions=("session", "nunique"),
        first=("start", "min"),
        last=("start", "max"),
    )
    classes: list[QueryClass] = []
    for fingerprint, rows in own.groupby("fingerprint", sort=True):
        stat = stats.loc[fingerprint]
        counts = {str(k): int(v) for k, v in rows["verdict"].value_counts().items()}
        latency, reference = _latency(rows)
        verdict = _class_verdict(counts, latency, reference, thresholds)
        examples = [_example(r) for _, r in _examples(rows, verdict, max_examples).iterrows()]
        affected = rows[rows["verdict"] == str(verdict)] if verdict is not Verdict.OK else rows[:0]
        breaking = rows["verdict"].isin([str(v) for v in BREAKING])
        apps = sorted({str(a) for a in rows["application_name"] if a})
        first = examples[0] if examples else {}
        query_class = QueryClass(
            fingerprint=str(fingerprint),
            sql=first.get("sql", ""),
            normalized=normalize(first.get("sql", "")),
            verdict=verdict,
            count=int(stat["count"]),
            share=round(int(stat["count"]) / total, 6) if total else 0.0,
            statement_verdicts=dict(sorted(counts.items())),
            broken=int(breaking.sum()) if verdict in BREAKING else 0,
            cascaded=cascaded.get(str(fingerprint), 0),
            unsent=int(rows["verdict"].isna().sum()),
            sessions=int(stat["sessions"]),
            affected_sessions=int(affected["session"].nunique()),
            applications=apps,
            affected_applications=sorted({str(a) for a in affected["application_name"] if a}),
            first_seen=iso_time(native(stat["first"])),
            last_seen=iso_time(native(stat["last"])),
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


def _cascaded_per_class(judged: pd.DataFrame) -> dict[str, int]:
    """How many cascaded statements each class's failures took down with them."""
    cascade = judged[judged["cascade"]]
    if cascade.empty:
        return {}
    origin = judged.set_index(["session", "seq"])["fingerprint"]
    counts: dict[str, int] = {}
    for session, seq in zip(cascade["session"], cascade["cascade_of"], strict=True):
        fingerprint = origin.get((session, int(seq)))
        if fingerprint is not None:
            counts[str(fingerprint)] = counts.get(str(fingerprint), 0) + 1
    return counts


def broken_statements(classes: list[QueryClass]) -> int:
    """Statements that broke: those of breaking classes plus the failures they cascaded."""
    return sum(c.broken + c.cascaded for c in classes if c.verdict in BREAKING)
