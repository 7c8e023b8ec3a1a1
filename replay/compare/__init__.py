"""Compare and classify: from a run's saved outcomes to judged query classes.

Pure over data: :func:`classify` reads ``reports/NAME/`` (``outcomes.jsonl`` with
pandas, and ``run.json``, ``schema.json`` and ``blame.json`` where the run wrote them)
and never connects to a database, so a report re-renders anywhere from the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from replay.compare.classes import broken_statements, judge, query_classes
from replay.compare.findings import Findings, Latency, QueryClass, exit_code
from replay.compare.verdict import (
    BREAKING,
    FAIL_ON_LEVELS,
    Thresholds,
    Verdict,
    statement_verdict,
    statement_verdicts,
)
from replay.errors import BadInput
from replay.outcomes import outcomes_path

__all__ = [
    "BREAKING",
    "FAIL_ON_LEVELS",
    "Findings",
    "Latency",
    "QueryClass",
    "Thresholds",
    "Verdict",
    "classify",
    "classify_frame",
    "exit_code",
    "read_outcomes",
    "statement_verdict",
    "statement_verdicts",
]

BLAME_FILE = "blame.json"
RUN_FILE = "run.json"
SCHEMA_FILE = "schema.json"
_IDENTITY_COLUMNS = ("session", "seq", "start", "fingerprint", "sql", "application_name")


def read_outcomes(report_folder: Path | str) -> pd.DataFrame:
    """The saved outcome rows of a run as a DataFrame, one column per flat field."""
    path = outcomes_path(report_folder)
    try:
        if path.stat().st_size == 0:
            return pd.DataFrame(columns=list(_IDENTITY_COLUMNS))
        frame = pd.read_json(path, lines=True, dtype=False)
    except ValueError as exc:
        raise BadInput(f"unreadable outcomes in {path}: {exc}") from None
    missing = [c for c in _IDENTITY_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"outcomes in {path} lack the fields {', '.join(missing)}")
    return frame


def classify_frame(
    frame: pd.DataFrame,
    *,
    slower_factor: float = 2.0,
    slower_min_seconds: float = 0.001,
    max_examples: int = 3,
) -> Findings:
    """Judge an outcomes frame and group it into query classes, worst first."""
    thresholds = Thresholds(slower_factor, slower_min_seconds)
    judged = judge(frame, thresholds)
    classes = query_classes(judged, len(judged), thresholds, max_examples)
    own = judged[~judged["cascade"]]
    return Findings(
        classes=classes,
        statements=len(judged),
        cascaded=int(judged["cascade"].sum()),
        unsent=int(own["verdict"].isna().sum()),
        broken_statements=broken_statements(classes),
        slower_factor=slower_factor,
    )


def classify(
    report_folder: Path | str,
    *,
    slower_factor: float = 2.0,
    slower_min_seconds: float = 0.001,
    max_examples: int = 3,
) -> Findings:
    """The findings of the run saved in ``report_folder``, with its blame and schema diff."""
    from replay.schema import diff

    folder = Path(report_folder)
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a report folder")
    findings = classify_frame(
        read_outcomes(folder),
        slower_factor=slower_factor,
        slower_min_seconds=slower_min_seconds,
        max_examples=max_examples,
    )
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
