"""Which statements a look at a capture, or a replay of it, takes: a time window, some
applications, some query classes. Shared by ``replay inspect`` and ``replay run`` so
that the window an incident is inspected in is the window replayed.

Times are epoch seconds or ISO 8601; one without a zone is UTC, as ``replay inspect``
prints them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from replay.errors import BadInput
from replay.model.records import Statement
from replay.sql.fingerprint import fingerprint


def parse_time(value: str | float | None) -> float | None:
    """Epoch seconds from an epoch number or an ISO 8601 time (UTC when no zone given)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"not a time: {value!r} (use ISO 8601 or epoch seconds)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def iso(ts: float | None) -> str | None:
    """A capture time as ISO 8601 in UTC, to the millisecond."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Selection:
    """A time window, applications and query classes; an empty part takes everything."""

    since: float | None = None
    until: float | None = None
    classes: frozenset[str] = frozenset()
    applications: frozenset[str] = frozenset()

    def wants(self, statement: Statement, application: str = "") -> bool:
        return self.wants_at(statement.start, statement.sql, application)

    def wants_at(self, start: float, sql: str, application: str = "") -> bool:
        """Whether a statement of ``sql`` that started at ``start`` is selected."""
        if self.since is not None and start < self.since:
            return False
        if self.until is not None and start > self.until:
            return False
        if self.applications and application not in self.applications:
            return False
        return not self.classes or fingerprint(sql) in self.classes
