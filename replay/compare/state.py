"""What classification keeps of one query class, in memory bounded whatever the run's length.

Filled by the fold (:class:`replay.compare.accumulate.Accumulator`), merged across the
parts of a run (replay workers), read by :mod:`replay.compare.classes`.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from replay.compare.examples import Example
from replay.compare.sketch import DistinctCounter, QuantileSketch

UNSENT = ""  # the statement-verdict key of rows nothing was compared for
APPLICATION_LIMIT = 256

# An example's place among its class's: (start, session, seq, position in the run).
SortKey = tuple[Any, str, int, int]


@dataclass(slots=True)
class Kept:
    """An example statement, with where it sorts among the class's others."""

    key: SortKey
    example: Example

    def __lt__(self, other: Kept) -> bool:
        return self.key < other.key


@dataclass(slots=True)
class ClassState:
    """What classification keeps of one query class's statements.

    Exact counters (statements, statement verdicts keyed by name with ``UNSENT`` for
    rows not compared, first and last start); sessions and applications, overall and per
    statement verdict; latencies of the statements both sides answered and timed
    (baseline, candidate, and the slower of the two baselines); and the first
    ``max_examples`` statements of each statement verdict by :data:`SortKey`, from
    which the class's examples are chosen once its verdict is known (the first of a
    union are among the first of its parts).
    """

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
    examples: dict[str, list[Kept]] = field(default_factory=dict)

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
        for key, kept in other.examples.items():
            for one in kept:
                self.keep(key, one, max_examples)

    def keep(self, verdict: str, one: Kept, max_examples: int) -> None:
        """Keep ``one`` if it is among the first ``max_examples`` of its statement
        verdict; the kept ones stay in order."""
        kept = self.examples.setdefault(verdict, [])
        bisect.insort_right(kept, one)
        del kept[max_examples:]


def add_application(names: set[str], name: Any) -> None:
    if name and len(names) < APPLICATION_LIMIT:
        names.add(str(name))
