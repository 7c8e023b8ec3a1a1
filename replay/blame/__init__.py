"""Blame: which migration file, and which statement in it, breaks each query class.

Stage 5 of the flow, on what the run holds in memory: the migrations it applied, the
classes it found, the capture it split, and the pristine template
:class:`replay.targets.clone.Clones` made from the source before the candidate was
migrated. For every ``fails``, ``shape`` and ``changed`` class the sessions holding its
examples are replayed on probes (:mod:`replay.blame.probes`): copies of the template
with only some of the migrations applied; a probe breaks a class when one of its
examples answers with a breaking verdict against a probe with none applied. Bisection
(:mod:`replay.blame.bisect`) names the file and the statement.

The result (fingerprint → blame) is saved as ``blame.json``, which
:func:`replay.compare.classify` reads into ``findings.json`` when a report is
re-rendered from the folder.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from replay.blame.bisect import blame_class
from replay.blame.probes import Prober, example_sessions
from replay.capture.split import SplitCapture
from replay.compare import BLAME_FILE, BREAKING, QueryClass
from replay.engine import EngineOptions, Timeouts
from replay.targets.migrate import Migration

__all__ = ["Blames", "attach", "blame", "save"]

Blames = dict[str, dict[str, Any]]
"""Each blamed class's fingerprint → its blame (migration, statement, probes)."""
Notify = Callable[[str], None]


def blame(
    classes: Iterable[QueryClass],
    migrations: Sequence[Migration],
    split: SplitCapture,
    *,
    scratch: str,
    pristine: str,
    timeouts: Timeouts | None = None,
    migration_timeout: float | None = None,
    notify: Notify | None = None,
) -> Blames:
    """Blame every breaking class of ``classes`` on ``migrations``.

    ``split`` is the run's split capture (only read); ``pristine`` the name of the
    untouched copy of the source on ``scratch``, the server where probes are made and
    dropped. ``--migrate-cmd`` runs bisect the statements the command was recorded
    running.
    """
    say = notify or (lambda message: None)
    suspects = [c for c in classes if c.verdict in BREAKING]
    if not suspects or not migrations:
        return {}
    examples = {c.fingerprint: [(e["session"], e["seq"]) for e in c.examples] for c in suspects}
    blamed: Blames = {}
    with tempfile.TemporaryDirectory(prefix="replay-blame-") as workdir:
        wanted = {key for keys in examples.values() for key in keys}
        prober = Prober(
            migrations, example_sessions(split, wanted, Path(workdir)), examples,
            scratch=scratch, pristine=pristine, migration_timeout=migration_timeout,
            # One session at a time: every probe replays them in the same order.
            options=EngineOptions(jobs=1, timeouts=timeouts or Timeouts()),
        )  # fmt: skip
        for query_class in suspects:
            say(f"blame: bisecting {len(migrations)} migrations for {query_class.fingerprint}")
            found = blame_class(prober, query_class.fingerprint)
            if found is not None:
                blamed[query_class.fingerprint] = {**found, "probes": prober.probes}
    return blamed


def save(folder: Path | str, blamed: Blames) -> None:
    """Write ``blame.json`` into the report folder."""
    (Path(folder) / BLAME_FILE).write_text(json.dumps(blamed, indent=1), encoding="utf-8")


def attach(classes: Iterable[QueryClass], blamed: Blames) -> None:
    """Give each class its blame, as :func:`replay.compare.classify` does from the file."""
    for query_class in classes:
        query_class.blame = blamed.get(query_class.fingerprint)
