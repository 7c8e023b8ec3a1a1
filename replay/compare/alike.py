"""The common case, judged and folded without pandas: rows every target answered alike.

Almost every statement of a replay gets the same answer from every target: status
``ok``, the same command tag, row count, columns and row digests. For such a row the
statement rule (:func:`replay.compare.verdict.statement_verdicts`) can only say ``ok``
or, from the timings, ``slower``; building a DataFrame for it cost more than replaying
it. :func:`alike_verdict` recognises these rows (strictly: both digests, ordered and
unordered, must agree, so a row that only *might* be alike goes the pandas way) and
:class:`AlikeFold` folds a chunk of them into the per-class state exactly as
:class:`replay.compare.accumulate.Accumulator` folds a judged frame. Every other row
(an error, a difference, a cascade, an unsent statement) is judged by pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import pandas as pd

from replay.compare.sketch import DistinctCounter
from replay.compare.state import KEY_COLUMN, ROW_COLUMN, ClassState, add_application
from replay.compare.verdict import Thresholds, Verdict

# What must be equal on every target (None equals None), beside status "ok".
_ASPECTS = ("tag", "rows", "columns", "digest", "digest_unordered")
_ANSWERS = {
    target: itemgetter(*(f"{target}_{aspect}" for aspect in _ASPECTS))
    for target in ("baseline", "candidate", "baseline2")
}
OK = str(Verdict.OK)
SLOWER = str(Verdict.SLOWER)


def alike_verdict(row: Mapping[str, Any], limits: Thresholds) -> str | None:
    """``ok`` or ``slower`` for a flat outcome row that every target answered alike;
    None for any other row (judge it with :func:`statement_verdicts`)."""
    get = row.get
    if get("baseline_status") != "ok" or get("candidate_status") != "ok":
        return None
    if get("cascade_of") is not None or not isinstance(get("fingerprint"), str):
        return None
    base2 = get("baseline2_status")
    if base2 is not None and base2 != "ok":
        return None
    try:  # a row written by the engine has every field; any other goes the pandas way
        baseline = _ANSWERS["baseline"](row)
        if _ANSWERS["candidate"](row) != baseline:
            return None
        if base2 is not None and _ANSWERS["baseline2"](row) != baseline:
            return None
    except KeyError:
        return None
    # The statement rule's durations: a missing one (not timed) counts as 0.
    reference = get("baseline_duration") or 0.0
    if base2 is not None:
        reference = max(reference, get("baseline2_duration") or 0.0)
    candidate = get("candidate_duration") or 0.0
    slower = (
        candidate > limits.slower_factor * reference
        and candidate - reference > limits.slower_min_seconds
    )
    return SLOWER if slower else OK


@dataclass
class AlikeFold:
    """One chunk's alike rows, collected per class and then folded in at once
    (:meth:`into`): the sets and lists here hold one chunk, never a run."""

    max_examples: int
    _sessions: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    _applications: set[tuple[str, str, str]] = field(default_factory=set)
    _latency: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)
    jitter: list[float] = field(default_factory=list)

    def add(
        self, state: ClassState, fingerprint: str, row: Mapping[str, Any], verdict: str, number: int
    ) -> None:
        """Fold ``row`` (the ``number``-th of the run) with its ``verdict`` into ``state``."""
        start = row["start"]
        state.count += 1
        if state.first is None or start < state.first:
            state.first = start
        if state.last is None or start > state.last:
            state.last = start
        state.verdicts[verdict] += 1
        session = str(row["session"])
        sessions = self._sessions.get(fingerprint)
        if sessions is None:
            sessions = self._sessions[fingerprint] = set()
        sessions.add((verdict, session))
        application = row.get("application_name")
        if application:
            self._applications.add((fingerprint, verdict, application))
        base, cand = row.get("baseline_duration"), row.get("candidate_duration")
        base2 = row.get("baseline2_duration")
        if base2 is not None and base is not None:
            self.jitter.append(abs(base - base2))
        if base is not None and cand is not None:
            lists = self._latency.get(fingerprint)
            if lists is None:
                lists = self._latency[fingerprint] = ([], [], [])
            lists[0].append(base)
            lists[1].append(cand)
            lists[2].append(max(base, base2) if base2 is not None else base)
        if self.max_examples > 0:
            self._example(state, row, verdict, number)

    def _example(
        self, state: ClassState, row: Mapping[str, Any], verdict: str, number: int
    ) -> None:
        kept = state.examples.setdefault(verdict, [])
        key = (row["start"], str(row["session"]), int(row["seq"]), number)
        # Kept examples are in order (see ClassState.keep), so the last is the latest.
        if len(kept) >= self.max_examples and key >= kept[-1][0]:
            return
        record = {**row, "verdict": verdict, KEY_COLUMN: verdict, ROW_COLUMN: number}
        state.keep(verdict, key, record, self.max_examples)

    def into(self, states: dict[str, ClassState]) -> None:
        """Fold what this chunk collected into the classes' sessions, applications and
        latencies (the counters and examples were folded row by row)."""
        for fingerprint, pairs in self._sessions.items():
            state = states[fingerprint]
            state.sessions.add(pd.Series(list({session for _, session in pairs})))
            by_verdict: dict[str, list[str]] = {}
            for verdict, session in pairs:
                by_verdict.setdefault(verdict, []).append(session)
            for verdict, sessions in by_verdict.items():
                counter = state.affected_sessions.setdefault(verdict, DistinctCounter())
                counter.add(pd.Series(sessions))
        for fingerprint, verdict, application in self._applications:
            state = states[fingerprint]
            add_application(state.applications, application)
            add_application(state.affected_applications.setdefault(verdict, set()), application)
        for fingerprint, (base, cand, reference) in self._latency.items():
            state = states[fingerprint]
            state.baseline.add(base)
            state.candidate.add(cand)
            state.reference.add(reference)
