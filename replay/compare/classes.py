"""Query classes: judged statements grouped by fingerprint, from their folded state.

A class's verdict is the worst verdict among its statements, with two refinements:

- noise downgrades: when some statements of a class differ between the two baselines,
  its ``changed`` statements are not evidence against the migration either, and the
  class is ``noisy``;
- ``slower`` is a property of the class, not of one execution: a class whose other
  verdicts are harmless is ``slower`` when its *median* candidate latency exceeds the
  slower baseline's by the thresholds' factor and margin (the statement rule's own
  comparison, :func:`replay.compare.verdict.is_slower`). One slow execution is jitter,
  and so is any gap no larger than what the two baselines of the run differ by
  (:func:`baseline_jitter`): on a busy machine a sub-millisecond COMMIT takes a few
  milliseconds on one target and not the other, whatever the migration.

Statements that only failed because an earlier statement of their transaction failed
(``cascade_of``) are not a class of their own: they are counted as ``cascaded`` on the
class of that first failure, and as broken traffic when that failure breaks.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from replay.compare.examples import Example, column_diff, iso_time
from replay.compare.findings import Latency, QueryClass
from replay.compare.sketch import QuantileSketch
from replay.compare.state import UNSENT, ClassState
from replay.compare.verdict import BREAKING, Thresholds, Verdict, is_slower
from replay.sql.fingerprint import normalize

if TYPE_CHECKING:
    from replay.compare.accumulate import Accumulator


def _class_verdict(
    counts: dict[str, int], latency: Latency, reference: float, limits: Thresholds
) -> Verdict:
    present = sorted((Verdict(v) for v in counts), key=lambda v: -v.severity)
    worst = next((v for v in present if v is not Verdict.SLOWER), Verdict.OK)
    if worst is Verdict.CHANGED and Verdict.NOISY in present:
        return Verdict.NOISY
    if worst in BREAKING:
        return worst
    slower = is_slower(latency.candidate_median, reference, limits)
    return Verdict.SLOWER if slower else worst


def _examples(state: ClassState, verdict: Verdict, max_examples: int) -> list[Example]:
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
    picked.sort()
    return [kept.example for kept in picked[:max_examples]]


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
        counts = {str(k): n for k, n in sorted(state.verdicts.items()) if k != UNSENT and n}
        latency, reference = _latency(state)
        verdict = _class_verdict(counts, latency, reference, thresholds)
        examples = _examples(state, verdict, acc.max_examples)
        affected = str(verdict) if verdict is not Verdict.OK else None
        sessions = state.affected_sessions.get(affected) if affected else None
        first = examples[0] if examples else None
        sql = first["sql"] if first else ""
        query_class = QueryClass(
            fingerprint=fingerprint,
            sql=sql,
            normalized=normalize(sql),
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
            first_seen=iso_time(state.first),
            last_seen=iso_time(state.last),
            latency=latency,
            baseline=(first.get("baseline") if first else None) or {},
            candidate=(first.get("candidate") if first else None) or {},
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
