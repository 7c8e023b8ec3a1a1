"""Findings: the judged query classes of one run, and their ``findings.json`` form.

``findings.json`` is a contract (see docs/design.md): ``summary`` holds the number of
classes per verdict (one key per verdict name) with the run's totals and the ``safe``
flag, ``classes`` one entry per query class, worst first, each with at least
``fingerprint``, ``sql``, ``count``, ``verdict``, the ``baseline`` and ``candidate``
outcomes (``sqlstate`` and ``message`` where an error) and ``blame`` (``null`` until a
blame run named the migration statement). Nothing in it depends on when it was made,
so re-rendering a report from the same outcomes gives the same file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from replay.compare.examples import ColumnDiff, Example, Outcome
from replay.compare.verdict import BREAKING, FAIL_ON_LEVELS, Verdict
from replay.errors import BadInput

FINDINGS_VERSION = 1


@dataclass(slots=True)
class Latency:
    """Seconds a class took on the baseline and on the candidate."""

    baseline_median: float = 0.0
    baseline_p95: float = 0.0
    candidate_median: float = 0.0
    candidate_p95: float = 0.0

    @property
    def ratio(self) -> float | None:
        """Candidate median over baseline median, ``None`` when the baseline took no time."""
        if self.baseline_median <= 0:
            return None
        return self.candidate_median / self.baseline_median


@dataclass(slots=True)
class QueryClass:
    """One query class (a pglast fingerprint) and what the migration does to it."""

    fingerprint: str
    sql: str
    normalized: str
    verdict: Verdict
    count: int
    share: float
    statement_verdicts: dict[str, int]
    broken: int = 0
    cascaded: int = 0
    unsent: int = 0
    sessions: int = 0
    affected_sessions: int = 0
    applications: list[str] = field(default_factory=list)
    affected_applications: list[str] = field(default_factory=list)
    first_seen: str | None = None
    last_seen: str | None = None
    latency: Latency = field(default_factory=Latency)
    baseline: Outcome = field(default_factory=Outcome)
    candidate: Outcome = field(default_factory=Outcome)
    examples: list[Example] = field(default_factory=list)
    column_diff: ColumnDiff | None = None
    blame: dict[str, Any] | None = None

    @property
    def is_finding(self) -> bool:
        """Whether a person should read about this class (anything but ``ok``)."""
        return self.verdict is not Verdict.OK

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["verdict"] = str(self.verdict)
        body["latency"]["ratio"] = _round(self.latency.ratio)
        return body


@dataclass(slots=True)
class Findings:
    """Every query class of a run, worst first, with the run's totals."""

    classes: list[QueryClass]
    statements: int = 0
    cascaded: int = 0
    unsent: int = 0
    broken_statements: int = 0
    slower_factor: float = 2.0
    run: dict[str, Any] = field(default_factory=dict)
    schema_diff: list[dict[str, Any]] = field(default_factory=list)

    @property
    def breaking(self) -> list[QueryClass]:
        """The classes whose verdict is ``fails``, ``shape`` or ``changed``."""
        return [c for c in self.classes if c.verdict in BREAKING]

    @property
    def safe(self) -> bool:
        """No class breaks: safe to deploy ahead of the code."""
        return not self.breaking

    @property
    def broken_share(self) -> float:
        """Share of the replayed statements that broke (cascaded failures included)."""
        return self.broken_statements / self.statements if self.statements else 0.0

    @property
    def worst(self) -> Verdict:
        return self.classes[0].verdict if self.classes else Verdict.OK

    def by_verdict(self) -> dict[str, int]:
        counts = {str(v): 0 for v in Verdict}
        for query_class in self.classes:
            counts[str(query_class.verdict)] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        return {
            **self.by_verdict(),
            "classes": len(self.classes),
            "statements": self.statements,
            "cascaded": self.cascaded,
            "unsent": self.unsent,
            "breaking_classes": len(self.breaking),
            "broken_statements": self.broken_statements,
            "traffic_share_broken": _round(self.broken_share),
            "worst": str(self.worst),
            "slower_factor": self.slower_factor,
            "safe": self.safe,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FINDINGS_VERSION,
            "summary": self.summary(),
            "run": self.run,
            "classes": [c.to_json() for c in self.classes],
            "schema_diff": self.schema_diff,
        }

    def dumps(self) -> str:
        """``findings.json``'s text: stable key order, two-space indent, final newline."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def exit_code(findings: Findings, fail_on: str = "fails") -> int:
    """1 when any class's verdict is at or above ``fail_on``, else 0 (docs/design.md, "Exit codes").

    ``fail_on`` is a verdict name (see :data:`replay.compare.verdict.FAIL_ON_LEVELS`) or
    ``never``; an unknown level is bad input.
    """
    if fail_on not in FAIL_ON_LEVELS:
        raise BadInput(f"unknown --fail-on level {fail_on!r} (one of {', '.join(FAIL_ON_LEVELS)})")
    return int(any(c.verdict.at_or_above(fail_on) for c in findings.classes))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
