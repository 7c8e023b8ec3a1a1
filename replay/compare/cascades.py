"""Cascaded failures: which query class's failure each cascaded statement follows.

A cascaded row (``cascade_of`` set, see :class:`replay.model.outcomes.OutcomeRow`) names the
``seq`` of the first failure of its transaction in the same session. Classification reads
outcomes a chunk at a time, so that failure may lie in an earlier chunk (or, in a file
not written in order, a later one): :class:`CascadeTracker` remembers the most recent
``RECENT_FAILURES`` failing statements (an error or timeout on any target, the only rows
the engine names as an origin) and the most recent ``PENDING_CASCADES`` cascades whose
origin it has not met yet. A transaction's cascades follow its first failure closely, so
the count is exact unless more than that many failures come between the two; a cascade
whose origin is never found is not counted on any class, as before chunking.
"""

from __future__ import annotations

from collections import OrderedDict

RECENT_FAILURES = 20_000
PENDING_CASCADES = 20_000

Key = tuple[str, int]


class CascadeTracker:
    """Counts cascaded statements per query class of their first failure, in bounded memory."""

    def __init__(
        self, recent_limit: int = RECENT_FAILURES, pending_limit: int = PENDING_CASCADES
    ) -> None:
        self.recent_limit = recent_limit
        self.pending_limit = pending_limit
        self.counts: dict[str, int] = {}
        self._recent: OrderedDict[Key, str] = OrderedDict()
        self._pending: OrderedDict[Key, int] = OrderedDict()

    def add(self, failures: list[tuple[str, int, str]], cascades: list[Key]) -> None:
        """Fold in a chunk's failing statements (``(session, seq, fingerprint)``), then its
        cascaded ones (``(session, cascade_of)``)."""
        recent, pending = self._recent, self._pending
        for session, seq, fingerprint in failures:
            key = (session, seq)
            waiting = pending.pop(key, 0)
            if waiting:
                self._count(fingerprint, waiting)
            recent[key] = fingerprint
            recent.move_to_end(key)
            if len(recent) > self.recent_limit:
                recent.popitem(last=False)
        for key in cascades:
            found = recent.get(key)
            if found is not None:
                self._count(found, 1)
                continue
            pending[key] = pending.get(key, 0) + 1
            if len(pending) > self.pending_limit:
                pending.popitem(last=False)

    def merge(self, other: CascadeTracker) -> None:
        """Fold in the counts of another part of the run. Parts hold whole sessions, so
        a cascade and its first failure are always in the same part."""
        for fingerprint, n in other.counts.items():
            self._count(fingerprint, n)

    def _count(self, fingerprint: str, n: int) -> None:
        self.counts[fingerprint] = self.counts.get(fingerprint, 0) + n
