"""Bisection over migration files and statements: which one breaks a query class.

Pure: it asks :class:`Probes` whether a *plan* (some migrations applied, the last of
them perhaps only in part) breaks a class, and never touches a database itself
(:mod:`replay.blame.probes` answers with real probe databases; a test can answer
with a table).

- Bisection over the files (the breakage is assumed to persist once it appears, as
  migrations build on each other) finds the first prefix of files that breaks the class.
- If that file alone does not break it (or does not even apply on the baseline), a
  second bisection finds the earliest file it needs, and the blame says the class breaks
  only with the two together.
- Then the same bisection over the guilty file's statements names the statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from replay.targets.migrate import Migration

Plan = tuple[tuple[int, int], ...]
"""Which migrations a probe applies: (file index, number of its statements) pairs."""


class Probes(Protocol):
    """Says whether the class's examples break with a plan applied."""

    @property
    def migrations(self) -> Sequence[Migration]: ...

    def breaks(self, plan: Plan, fingerprint: str) -> bool: ...


def whole(migrations: Sequence[Migration], files: range) -> Plan:
    """The plan applying ``files`` of ``migrations`` whole."""
    return tuple((i, len(migrations[i].statements)) for i in files)


def first(low: int, high: int, breaks: Callable[[int], bool]) -> int:
    """The smallest n in (low, high] with ``breaks(n)``, given not low and ``breaks(high)``."""
    while high - low > 1:
        middle = (low + high) // 2
        if breaks(middle):
            high = middle
        else:
            low = middle
    return high


def blame_class(probes: Probes, fingerprint: str) -> dict[str, Any] | None:
    """The blame of one class, or ``None`` when its examples do not break on a probe."""
    migrations = probes.migrations
    files = len(migrations)

    def prefix_breaks(n: int) -> bool:
        return probes.breaks(whole(migrations, range(n)), fingerprint)

    if not files or not prefix_breaks(files):
        return None
    guilty = first(0, files, prefix_breaks) - 1
    size = len(migrations[guilty].statements)
    together: list[int] = []
    if guilty > 0 and not probes.breaks(((guilty, size),), fingerprint):
        # Needs an earlier file too: the latest start j of files j..guilty that breaks.
        def breaks_from(j: int) -> bool:
            return probes.breaks(whole(migrations, range(j, guilty + 1)), fingerprint)

        start = guilty - first(0, guilty, lambda back: breaks_from(guilty - back))
        pair = (*whole(migrations, range(start, start + 1)), (guilty, size))
        together = [start, guilty] if probes.breaks(pair, fingerprint) else []
        together = together or list(range(start, guilty + 1))
    base = whole(migrations, range(guilty))
    statement = first(0, size, lambda m: probes.breaks((*base, (guilty, m)), fingerprint)) - 1
    migration = migrations[guilty]
    blame: dict[str, Any] = {
        "migration": migration.name,
        "path": str(migration.path) if migration.path else None,
        "statement_index": statement,
        "statement": migration.statements[statement].strip(),
    }
    if together:
        blame["migrations"] = [migrations[i].name for i in together]
    return blame
