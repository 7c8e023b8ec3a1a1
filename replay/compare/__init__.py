"""Compare and classify: from a run's saved outcomes to judged query classes.

Pure over data: :func:`classify` reads ``reports/NAME/`` (``outcomes.jsonl``, and
``run.json``, ``schema.json`` and ``blame.json`` where the run wrote them) and never
connects to a database, so a report re-renders anywhere from the folder.

Memory is bounded by the number of query classes, never by the length of the run:
``outcomes.jsonl`` is read a chunk at a time (:mod:`replay.compare.reading`), every row
judged by the one statement rule (:func:`replay.compare.verdict.judge`) and folded into
per-class state of bounded size (:mod:`replay.compare.accumulate`,
:mod:`replay.compare.sketch`), from which the classes are judged
(:mod:`replay.compare.classes`). Results are exact while a class's data fits its bounds
(2,048 timings, 4,096 sessions), as they are for any run of a few thousand statements per
class. All of it is plain Python over the flat rows: no DataFrame, and no pandas import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from replay.compare.accumulate import Accumulator
from replay.compare.classes import broken_statements, query_classes
from replay.compare.examples import ColumnDiff, Example, Outcome
from replay.compare.findings import Findings, Latency, QueryClass, exit_code
from replay.compare.reading import CHUNK_ROWS, iter_outcome_rows
from replay.compare.verdict import (
    BREAKING,
    FAIL_ON_LEVELS,
    Thresholds,
    Verdict,
    is_slower,
    judge,
    statement_verdict,
)
from replay.errors import BadInput
from replay.model.outcomes import outcomes_path

__all__ = [
    "BREAKING",
    "FAIL_ON_LEVELS",
    "Accumulator",
    "ColumnDiff",
    "Example",
    "Findings",
    "Latency",
    "Outcome",
    "QueryClass",
    "Thresholds",
    "Verdict",
    "classify",
    "classify_rows",
    "exit_code",
    "findings_of",
    "is_slower",
    "judge",
    "statement_verdict",
]

BLAME_FILE = "blame.json"
RUN_FILE = "run.json"
SCHEMA_FILE = "schema.json"


def classify_rows(
    rows: Iterable[dict[str, Any]],
    *,
    slower_factor: float = 2.0,
    slower_min_seconds: float = 0.001,
    max_examples: int = 3,
    chunk_rows: int = CHUNK_ROWS,
    origin: Path | str = "outcome rows",
) -> Findings:
    """Judge flat outcome rows (a run in file order) and group them into query classes,
    worst first, folding ``chunk_rows`` at a time (``origin`` names them in errors)."""
    acc = Accumulator(Thresholds(slower_factor, slower_min_seconds), max_examples)
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_rows:
            acc.add_rows(chunk, origin)
            chunk = []
    if chunk:
        acc.add_rows(chunk, origin)
    return findings_of(acc)


def findings_of(acc: Accumulator) -> Findings:
    """The findings of everything folded into ``acc``."""
    classes = query_classes(acc)
    slower_factor = acc.thresholds.slower_factor
    return Findings(
        classes=classes,
        statements=acc.statements,
        cascaded=acc.cascaded,
        unsent=acc.unsent,
        broken_statements=broken_statements(classes),
        slower_factor=slower_factor,
    )


def classify(
    report_folder: Path | str,
    *,
    slower_factor: float = 2.0,
    slower_min_seconds: float = 0.001,
    max_examples: int = 3,
    chunk_rows: int = CHUNK_ROWS,
    accumulated: Accumulator | None = None,
) -> Findings:
    """The findings of the run saved in ``report_folder``, with its blame and schema diff.

    ``outcomes.jsonl`` is read ``chunk_rows`` lines at a time: memory follows the number
    of query classes, not the length of the run. ``accumulated``: the same rows already
    folded as the replay wrote them (the sink of :func:`replay.engine.replay`); the
    file is then not read again. BadInput when the folder holds no replayed statement.
    """
    from replay.targets.schema import diff

    folder = Path(report_folder)
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a report folder")
    if accumulated is None:
        accumulated = Accumulator(Thresholds(slower_factor, slower_min_seconds), max_examples)
        origin = outcomes_path(folder)
        for rows in iter_outcome_rows(folder, chunk_rows):
            accumulated.add_rows(rows, origin)
    findings = findings_of(accumulated)
    if not findings.statements:
        # The gate never calls safe what it did not test.
        raise BadInput(f"{folder}: no replayed statement in its outcomes; nothing was tested")
    findings.run = _run_summary(_read_json(folder / RUN_FILE))
    schema = _read_json(folder / SCHEMA_FILE)
    if schema.get("baseline") is not None and schema.get("candidate") is not None:
        findings.schema_diff = diff(schema["baseline"], schema["candidate"])
    blame = _read_json(folder / BLAME_FILE)
    for query_class in findings.classes:
        query_class.blame = blame.get(query_class.fingerprint)
    return findings


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"unreadable {path}: {exc}") from None
    return loaded if isinstance(loaded, dict) else {}


def _run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """What a report shows of ``run.json``: never target URLs, which may hold passwords."""
    migrations = []
    for migration in run.get("migrations") or []:
        if not isinstance(migration, dict):
            continue
        statements = migration.get("statements")
        count = statements if isinstance(statements, int) else len(statements or [])
        migrations.append(
            {"name": migration.get("name"), "path": migration.get("path"), "statements": count}
        )
    summary: dict[str, Any] = {"migrations": migrations}
    if run.get("capture") is not None:
        summary["capture"] = str(run["capture"])
    return summary
