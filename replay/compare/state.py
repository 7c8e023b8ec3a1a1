"""What classification keeps of one query class, whichever way its rows were folded.

Shared by the pandas fold of judged frames (:mod:`replay.compare.accumulate`) and the
direct fold of the rows every target answered alike (:mod:`replay.compare.alike`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from replay.compare.sketch import DistinctCounter, QuantileSketch

UNSENT = ""
APPLICATION_LIMIT = 256
ROW_COLUMN = "_row"  # the row's position in the run: examples' last tie-break
KEY_COLUMN = "_verdict_key"

Example = tuple[tuple[Any, ...], dict[str, Any]]


def _sort_key(example: Example) -> tuple[Any, ...]:
    return example[0]


@dataclass(slots=True)
class ClassState:
    """What classification keeps of one query class's statements."""

    count: int = 0
    first: float | None = None
    last: float | None = None
    verdicts: Counter[str] = field(default_factory=Counter)
    sessions: DistinctCounter = field(default_factory=DistinctCounter)
    affected_sessions: dict[str, DistinctCounter] = field(default_factory=dict)
    applications: set[str] = field(default_factory=set)
    affected_applications: dict[str, set[str]] = field(default_factory=dict)
    baseline: QuantileSketch = field(default_factory=QuantileSketch)
    candidate: QuantileSketch = field(default_factory=QuantileSketch)
    reference: QuantileSketch = field(default_factory=QuantileSketch)
    examples: dict[str, list[Example]] = field(default_factory=dict)

    def merge(self, other: ClassState, max_examples: int) -> None:
        """Fold in the state of the same class from another part of the run."""
        self.count += other.count
        if other.first is not None:
            self.first = other.first if self.first is None else min(self.first, other.first)
        if other.last is not None:
            self.last = other.last if self.last is None else max(self.last, other.last)
        self.verdicts.update(other.verdicts)
        self.sessions.merge(other.sessions)
        for key, counter in other.affected_sessions.items():
            self.affected_sessions.setdefault(key, DistinctCounter()).merge(counter)
        for name in other.applications:
            add_application(self.applications, name)
        for key, names in other.affected_applications.items():
            mine = self.affected_applications.setdefault(key, set())
            for name in names:
                add_application(mine, name)
        self.baseline.merge(other.baseline)
        self.candidate.merge(other.candidate)
        self.reference.merge(other.reference)
        for key, examples in other.examples.items():
            for sort_key, record in examples:
                self.keep(key, sort_key, record, max_examples)

    def keep(
        self, verdict: str, sort_key: tuple[Any, ...], record: dict[str, Any], max_examples: int
    ) -> None:
        """Keep ``record`` if it is among the first ``max_examples`` of its statement
        verdict by ``sort_key``; the kept ones stay in that order."""
        kept = self.examples.setdefault(verdict, [])
        kept.append((sort_key, record))
        kept.sort(key=_sort_key)
        del kept[max_examples:]


def add_application(names: set[str], name: Any) -> None:
    if name and len(names) < APPLICATION_LIMIT:
        names.add(str(name))
