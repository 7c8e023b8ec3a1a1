"""Probes: copies of the pristine template with some migrations applied, replayed.

A probe is ``CREATE DATABASE ... TEMPLATE`` the pristine copy of the source that
:class:`replay.targets.clone.Clones` made before the candidate was migrated (no dump of
its own), with a plan's migrations applied. Only the sessions holding the breaking
classes' examples are replayed on it, one at a time, up to the last example: every
probe then replays the same statements in the same order.

Probes are memoised by their plan and shared by all classes, so a run with many
findings costs a few probes per file boundary, not per class.
"""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from replay.blame.bisect import Plan
from replay.capture.split import SessionFile, SplitCapture, read_session
from replay.compare import BREAKING, statement_verdict
from replay.engine import EngineOptions, replay
from replay.errors import MigrationError, SetupError
from replay.model.outcomes import OutcomeRow, iter_outcomes
from replay.targets import migrate
from replay.targets.clone import drop_database
from replay.targets.conninfo import with_database
from replay.targets.target import Target

Key = tuple[str, int]
"""A replayed statement: (session id, seq)."""


def example_sessions(split: SplitCapture, wanted: Collection[Key], folder: Path) -> SplitCapture:
    """The run's split cut down to the sessions holding ``wanted``, each up to the last
    wanted statement's start, written anew under ``folder`` (the run's files stay)."""
    ids = {session for session, _ in wanted}
    chosen: list[tuple[SessionFile, list[bytes], list[float]]] = []
    last: float | None = None
    for session_file in split.sessions:
        if read_session(session_file.path).id not in ids:
            continue
        with session_file.path.open("rb") as handle:
            lines = handle.readlines()
        starts = []
        for line in lines[1:]:
            statement = orjson.loads(line)
            starts.append(float(statement["start"]))
            if (statement["session"], statement["seq"]) in wanted:
                last = starts[-1] if last is None else max(last, starts[-1])
        chosen.append((session_file, lines, starts))
    sessions: list[SessionFile] = []
    count = 0
    for index, (session_file, lines, starts) in enumerate(chosen):
        if last is None:
            break  # no example is in the split: nothing to replay
        kept = [line for line, start in zip(lines[1:], starts, strict=True) if start <= last]
        path = folder / f"session-{index:08d}.jsonl"
        path.write_bytes(b"".join([lines[0], *kept]))
        sessions.append(SessionFile(session_file.first, path))
        count += len(kept)
    first = min((s.first for s in sessions), default=None)
    return dataclasses.replace(
        split, folder=folder, sessions=sessions, statements=count, first=first, last=last
    )


class Prober:
    """Makes probes from the pristine template and says which classes each one breaks."""

    def __init__(
        self,
        migrations: Sequence[migrate.Migration],
        split: SplitCapture,
        examples: dict[str, list[Key]],
        *,
        scratch: str,
        pristine: str,
        options: EngineOptions,
        migration_timeout: float | None = None,
    ) -> None:
        self.migrations = migrations
        self.split = split
        self.examples = examples
        self.wanted = {key for keys in examples.values() for key in keys}
        self.scratch = scratch
        self.pristine = pristine
        self.options = options
        self.migration_timeout = migration_timeout  # as the run's own migrations have
        self.probes = 0
        self._cache: dict[Plan, dict[Key, OutcomeRow] | None] = {}

    def breaks(self, plan: Plan, fingerprint: str) -> bool:
        """Whether the class's examples answer otherwise with ``plan`` applied than with
        nothing applied. Both sides are probes replayed the same way (the same sessions,
        one at a time), so sequences and row order agree wherever the schema does; the
        full run's baseline would not, having replayed every session concurrently."""
        control, probe = self._answers(()), self._answers(plan)
        if probe is None or control is None:
            return False  # this combination does not even apply
        for key in self.examples.get(fingerprint, []):
            if key in probe and key in control:
                judged = dataclasses.replace(control[key])
                judged.outcomes = {
                    "baseline": control[key].outcomes["candidate"],
                    "candidate": probe[key].outcomes["candidate"],
                }
                if statement_verdict(judged) in BREAKING:
                    return True
        return False

    def _answers(self, plan: Plan) -> dict[Key, OutcomeRow] | None:
        if plan not in self._cache:
            self._cache[plan] = self._probe(plan)
        return self._cache[plan]

    def _probe(self, plan: Plan) -> dict[Key, OutcomeRow] | None:
        self.probes += 1
        with self._database() as conninfo:
            try:
                for index, count in plan:
                    migration = self.migrations[index]
                    part = dataclasses.replace(migration, statements=migration.statements[:count])
                    migrate.apply(conninfo, part, timeout=self.migration_timeout)
            except MigrationError:
                return None
            with tempfile.TemporaryDirectory(prefix="replay-probe-") as out:
                replay(self.split, [Target("candidate", conninfo)], out, self.options)
                return {
                    (r.session, r.seq): r
                    for r in iter_outcomes(out)
                    if (r.session, r.seq) in self.wanted
                }

    @contextmanager
    def _database(self) -> Iterator[str]:
        name = f"{self.pristine}_p{uuid.uuid4().hex[:6]}"
        with scratch_connection(self.scratch) as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.pristine)
                )
            )
        try:
            yield with_database(self.scratch, name)
        finally:
            with scratch_connection(self.scratch) as admin:
                drop_database(admin, name)


@contextmanager
def scratch_connection(scratch: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the scratch server; its errors as one line (SetupError)."""
    try:
        with psycopg.connect(scratch, autocommit=True, connect_timeout=10) as conn:
            yield conn
    except psycopg.Error as exc:
        raise SetupError(f"blame: {str(exc).strip().splitlines()[0]}") from None
