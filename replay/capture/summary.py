"""Summaries of a capture: what it holds, when, from whom, and its busiest query classes.

One streaming pass; memory grows with the number of distinct query classes and open
sessions, never with the number of statements. Filters narrow the pass to a time window,
an application or some query classes, for incident forensics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.capture.format import read_records
from replay.model.records import Session, SessionEnd, Statement
from replay.model.selection import Selection, iso
from replay.sql.fingerprint import fingerprint, normalize


@dataclass
class ClassSummary:
    fingerprint: str
    sql: str
    count: int = 0
    errors: int = 0
    total_time: float = 0.0


@dataclass
class CaptureSummary:
    statements: int = 0
    sessions: int = 0
    errors: int = 0
    not_recorded: int = 0
    not_replayable: int = 0
    first: float | None = None
    last: float | None = None
    applications: Counter[str] = field(default_factory=Counter)
    by_class: dict[str, ClassSummary] = field(default_factory=dict)

    def busiest(self, top: int) -> list[ClassSummary]:
        return sorted(self.by_class.values(), key=lambda c: (-c.count, c.fingerprint))[:top]

    def to_json(self, top: int = 10) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "sessions": self.sessions,
            "errors": self.errors,
            "classes": len(self.by_class),
            "first": iso(self.first),
            "last": iso(self.last),
            "not_recorded_sessions": self.not_recorded,
            "not_replayable": self.not_replayable,
            "applications": dict(self.applications.most_common()),
            "busiest": [
                {
                    "fingerprint": c.fingerprint,
                    "sql": normalize(c.sql),
                    "count": c.count,
                    "errors": c.errors,
                    "total_ms": round(c.total_time * 1000, 3),
                }
                for c in self.busiest(top)
            ],
        }


def summarize(
    records: Iterable[Session | SessionEnd | Statement], keep: Selection | None = None
) -> CaptureSummary:
    keep = keep or Selection()
    summary = CaptureSummary()
    apps: dict[str, str] = {}
    seen_sessions: set[str] = set()
    for record in records:
        if isinstance(record, Session):
            apps[record.id] = record.application_name
        elif isinstance(record, SessionEnd):
            apps.pop(record.id, None)
            if not record.recorded:
                summary.not_recorded += 1
        else:
            app = apps.get(record.session, "")
            if not keep.wants(record, app):
                continue
            summary.statements += 1
            if record.session not in seen_sessions:
                seen_sessions.add(record.session)
                summary.applications[app] += 1
            if record.error is not None:
                summary.errors += 1
            if not record.replayable:
                summary.not_replayable += 1
            summary.first = (
                record.start if summary.first is None else min(summary.first, record.start)
            )
            summary.last = record.start if summary.last is None else max(summary.last, record.start)
            key = fingerprint(record.sql)
            cls = summary.by_class.get(key)
            if cls is None:
                cls = summary.by_class[key] = ClassSummary(key, record.sql)
            cls.count += 1
            cls.errors += record.error is not None
            cls.total_time += record.duration
    summary.sessions = len(seen_sessions)
    return summary


def inspect_capture(
    folder: Path | str,
    keep: Selection | None = None,
    warn: Callable[[str], None] | None = None,
) -> CaptureSummary:
    return summarize(read_records(folder, warn), keep)
