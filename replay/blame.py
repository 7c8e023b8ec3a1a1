"""Blame: which migration file, and which statement in it, breaks each query class.

For every ``fails``, ``shape`` and ``changed`` class of a finished run, the sessions
holding the class's examples are replayed on *probes*: fresh copies of a pristine clone
of the source with only some of the migrations applied. A probe breaks a class when one
of its examples gets a breaking verdict against the run's saved baseline outcome.

- Bisection over the files (the breakage is assumed to persist once it appears, as
  migrations build on each other) finds the first prefix of files that breaks the class.
- If that file alone does not break it (or does not even apply on the baseline), a
  second bisection finds the earliest file it needs, and the blame says the class breaks
  only with the two together.
- Then the same bisection over the guilty file's statements (split with pglast by
  :mod:`replay.targets.migrate`) names the statement.

Probes are memoised by the migrations they apply and shared by all classes, so a run
with many findings costs a few probes per file boundary, not per class. The result is
saved as ``blame.json`` (fingerprint → blame), which :func:`replay.compare.classify`
reads into ``findings.json``.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from replay.capture.split import SplitCapture, read_session, split_capture
from replay.compare import BLAME_FILE, BREAKING, RUN_FILE, classify, statement_verdict
from replay.engine import EngineOptions, Timeouts, replay
from replay.errors import BadInput, MigrationError, SetupError
from replay.model.outcomes import OutcomeRow, TargetOutcome, iter_outcomes
from replay.model.selection import Selection
from replay.targets import migrate
from replay.targets.clone import Target, dump_and_restore

Plan = tuple[tuple[int, int], ...]
"""Which migrations a probe applies: (file index, number of its statements) pairs."""
Notify = Callable[[str], None]


class Prober:
    """Makes probes from a pristine database and says which classes each one breaks."""

    def __init__(
        self,
        migrations: list[migrate.Migration],
        split: SplitCapture,
        saved: dict[tuple[str, int], OutcomeRow],
        examples: dict[str, list[tuple[str, int]]],
        *,
        scratch: str,
        pristine: str,
        options: EngineOptions,
    ) -> None:
        self.migrations = migrations
        self.split = split
        self.saved = saved
        self.examples = examples
        self.scratch = scratch
        self.pristine = pristine
        self.options = options
        self.probes = 0
        self._cache: dict[Plan, dict[tuple[str, int], TargetOutcome] | None] = {}

    def full(self, count: int) -> Plan:
        """The first ``count`` files, whole."""
        return tuple((i, len(self.migrations[i].statements)) for i in range(count))

    def breaks(self, plan: Plan, fingerprint: str) -> bool:
        """Whether the class's examples answer otherwise with ``plan`` applied than with
        nothing applied. Both sides are probes replayed the same way (the same sessions,
        one at a time), so sequences and row order agree wherever the schema does; the
        full run's baseline would not, having replayed every session concurrently."""
        control, probe = self._answers(()), self._answers(plan)
        if probe is None or control is None:
            return False  # this combination does not even apply
        for key in self.examples.get(fingerprint, []):
            if key in probe and key in control and key in self.saved:
                judged = dataclasses.replace(self.saved[key])
                judged.outcomes = {"baseline": control[key], "candidate": probe[key]}
                if statement_verdict(judged) in BREAKING:
                    return True
        return False

    def _answers(self, plan: Plan) -> dict[tuple[str, int], TargetOutcome] | None:
        if plan not in self._cache:
            self._cache[plan] = self._probe(plan)
        return self._cache[plan]

    def _probe(self, plan: Plan) -> dict[tuple[str, int], TargetOutcome] | None:
        self.probes += 1
        with self._database() as conninfo:
            try:
                for index, count in plan:
                    migration = self.migrations[index]
                    part = dataclasses.replace(migration, statements=migration.statements[:count])
                    migrate.apply(conninfo, part)
            except MigrationError:
                return None
            with tempfile.TemporaryDirectory(prefix="replay-probe-") as out:
                replay(self.split, [Target("candidate", conninfo)], out, self.options)
                return {
                    (r.session, r.seq): r.outcomes["candidate"]
                    for r in iter_outcomes(out)
                    if (r.session, r.seq) in self.saved
                }

    @contextmanager
    def _database(self) -> Iterator[str]:
        name = f"{self.pristine}_p{uuid.uuid4().hex[:6]}"
        _admin(self.scratch, sql.SQL("CREATE DATABASE {} TEMPLATE {}"), name, self.pristine)
        try:
            yield make_conninfo(self.scratch, dbname=name)
        finally:
            _admin(self.scratch, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)"), name)


def _migration(saved: dict[str, Any]) -> migrate.Migration:
    """A migration as run.json recorded it: a file is read again; a command's statements
    (recorded through the capture proxy) are taken as they were run."""
    if saved.get("path"):
        return migrate.load(Path(saved["path"]))
    return migrate.Migration(
        name=str(saved["name"]),
        command=saved.get("command"),
        transactional=False,
        statements=tuple(saved.get("statements") or ()),
    )


def _admin(scratch: str, statement: sql.SQL, *names: str) -> None:
    try:
        with psycopg.connect(scratch, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement.format(*(sql.Identifier(n) for n in names)))
    except psycopg.Error as exc:
        raise SetupError(f"blame: {str(exc).strip().splitlines()[0]}") from None


def _first(low: int, high: int, breaks: Callable[[int], bool]) -> int:
    """The smallest n in (low, high] with ``breaks(n)``, given not low and ``breaks(high)``."""
    while high - low > 1:
        middle = (low + high) // 2
        if breaks(middle):
            high = middle
        else:
            low = middle
    return high


def blame_class(prober: Prober, fingerprint: str) -> dict[str, Any] | None:
    """The blame of one class, or ``None`` when its examples do not break on a probe."""
    files = len(prober.migrations)
    if not files or not prober.breaks(prober.full(files), fingerprint):
        return None
    guilty = _first(0, files, lambda n: prober.breaks(prober.full(n), fingerprint)) - 1
    whole = len(prober.migrations[guilty].statements)
    together: list[int] = []
    if guilty > 0 and not prober.breaks(((guilty, whole),), fingerprint):
        # Needs an earlier file too: the latest start j of files j..guilty that breaks.
        def breaks_from(j: int) -> bool:
            plan = tuple((i, len(prober.migrations[i].statements)) for i in range(j, guilty))
            return prober.breaks((*plan, (guilty, whole)), fingerprint)

        start = guilty - _first(0, guilty, lambda back: breaks_from(guilty - back))
        pair = ((start, len(prober.migrations[start].statements)), (guilty, whole))
        together = [start, guilty] if prober.breaks(pair, fingerprint) else []
        together = together or list(range(start, guilty + 1))
    base = prober.full(guilty)
    statement = _first(0, whole, lambda m: prober.breaks((*base, (guilty, m)), fingerprint)) - 1
    migration = prober.migrations[guilty]
    blame: dict[str, Any] = {
        "migration": migration.name,
        "path": str(migration.path) if migration.path else None,
        "statement_index": statement,
        "statement": migration.statements[statement].strip(),
    }
    if together:
        blame["migrations"] = [prober.migrations[i].name for i in together]
    return blame


def blame(
    report_folder: Path | str,
    *,
    source: str,
    scratch: str,
    schema_only: bool = False,
    timeouts: Timeouts | None = None,
    notify: Notify | None = None,
) -> dict[str, dict[str, Any]]:
    """Blame every breaking class of the run in ``report_folder``; writes ``blame.json``.

    ``source`` is only read (one pg_dump into a pristine database on ``scratch``, the
    server where probes are made and dropped). The migrations and the capture are the
    ones ``run.json`` names; ``--migrate-cmd`` runs have no files to bisect.
    """
    say = notify or (lambda message: None)
    folder = Path(report_folder)
    run = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    migrations = [_migration(m) for m in run.get("migrations") or []]
    findings = classify(folder)
    suspects = [c for c in findings.classes if c.verdict in BREAKING]
    if not suspects or not migrations:
        return {}
    examples = {c.fingerprint: [(e["session"], e["seq"]) for e in c.examples] for c in suspects}
    wanted = {key for keys in examples.values() for key in keys}
    saved = {(r.session, r.seq): r for r in iter_outcomes(folder) if (r.session, r.seq) in wanted}
    last = max(r.start for r in saved.values()) if saved else None
    pristine = f"replay_blame_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="replay-blame-") as workdir:
        capture = run.get("capture")
        if not capture:
            raise BadInput(f"{folder / RUN_FILE} names no capture to replay for blame")
        split = split_capture(capture, workdir, selection=Selection(until=last))
        sessions = {key[0] for key in wanted}
        split.sessions = [s for s in split.sessions if read_session(s.path).id in sessions]
        _admin(scratch, sql.SQL("CREATE DATABASE {} TEMPLATE template0"), pristine)
        try:
            say(f"blame: copying the source into {pristine}")
            dump_and_restore(
                source, make_conninfo(scratch, dbname=pristine), schema_only=schema_only
            )
            prober = Prober(
                migrations, split, saved, examples,
                scratch=scratch, pristine=pristine,
                # One session at a time: every probe replays them in the same order.
                options=EngineOptions(jobs=1, timeouts=timeouts or Timeouts()),
            )  # fmt: skip
            blamed: dict[str, dict[str, Any]] = {}
            for query_class in suspects:
                say(f"blame: bisecting {len(migrations)} migrations for {query_class.fingerprint}")
                found = blame_class(prober, query_class.fingerprint)
                if found is not None:
                    blamed[query_class.fingerprint] = {**found, "probes": prober.probes}
        finally:
            _admin(scratch, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)"), pristine)
    (folder / BLAME_FILE).write_text(json.dumps(blamed, indent=1), encoding="utf-8")
    return blamed
