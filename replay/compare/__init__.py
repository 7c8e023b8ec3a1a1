"""Compare and classify: from a run's saved outcomes to judged query classes.

Pure over data: :func:`classify` reads ``reports/NAME/`` (``outcomes.jsonl`` with
pandas, and ``run.json``, ``schema.json`` and ``blame.json`` where the run wrote them)
and never connects to a database, so a report re-renders anywhere from the folder.

Memory is bounded by the number of query classes, never by the length of the run:
``outcomes.jsonl`` is read a chunk at a time (:mod:`replay.compare.reading`), the rows
every target answered alike judged directly (:mod:`replay.compare.alike`), the others
with pandas (:mod:`replay.compare.verdict`), and all folded into per-class state of
bounded size (:mod:`replay.compare.accumulate`, :mod:`replay.compare.sketch`), from which
the classes are judged (:mod:`replay.compare.classes`). Results are exact while a class's
data fits its bounds (2,048 timings, 4,096 sessions), as they are for any run of a few
thousand statements per class.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from replay.compare.accumulate import Accumulator
from replay.compare.classes import broken_statements, query_classes
from replay.compare.findings import Findings, Latency, QueryClass, exit_code
from replay.compare.reading import CHUNK_ROWS, iter_outcome_rows, read_outcomes
from replay.compare.verdict import (
    BREAKING,
    FAIL_ON_LEVELS,
    Thresholds,
    Verdict,
    statement_verdict,
    statement_verdicts,
)
from replay.errors import BadInput
from replay.model.outcomes import outcomes_path

__all__ = [
    "BREAKING",
    "FAIL_ON_LEVELS",
    "Accumulator",
    "Findings",
    "Latency",
    "QueryClass",
    "Thresholds",
    "Verdict",
    "classify",
    "classify_chunks",
    "classify_frame",
    "exit_code",
    "findings_of",
    "read_outcomes",
    "statement_verdict",
    "statement_verdicts",
]

BLAME_FILE = "blame.json"
RUN_FILE = "run.json"
SCHEMA_FILE = "schema.json"


def classify_frame(
    frame: pd.DataFrame,
    *,
    slower_factor: float = 2.0,
    slower_min_seconds: float = 0.001,
    max_examples: int = 3,
) -> Findings:
    """Judge an outcomes frame and group it into query classes, worst first."""
    return classify_chunks(
        [frame],
        slower_factor=slower_factor,
        slower_min_seconds=slower_min_seconds,
        max_examples=max_examples,
    )


def classify_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    slower_factor: float = 2.0,
    slower_min_seconds: float = 0.001,
    max_examples: int = 3,
) -> Findings:
    """Judge outcome frames one after the other (a run in file order), in bounded memory.

    The findings are those of the frames' concatenation (see
    :mod:`replay.compare.accumulate` for what is exact and what is estimated once a
    class outgrows its bounds).
    """
    acc = Accumulator(Thresholds(slower_factor, slower_min_seconds), max_examples)
    for chunk in chunks:
        acc.add(chunk)
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
    folded as the replay wrote them (see :class:`replay.engine.EngineOptions`); the
    file is then not read again.
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
