"""Reading a run's ``outcomes.jsonl`` into pandas, whole or a bounded chunk at a time.

:func:`iter_outcome_chunks` is what classification uses: one DataFrame per
``chunk_rows`` lines, so that memory follows the chunk, not the capture. Both readers
parse the same way, so a chunk's cells are the values the whole frame would hold: each
line with orjson, then one column per field (a field a line lacks is missing there),
and pandas infers each column's type as ``pd.read_json`` would. ``pd.read_json`` itself
reads the same file (it is plain JSON lines), but building its frame from a list of
dicts took half the classification's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from replay.errors import BadInput
from replay.outcomes import outcomes_path

IDENTITY_COLUMNS = ("session", "seq", "start", "fingerprint", "sql", "application_name")
CHUNK_ROWS = 10_000


def read_outcomes(report_folder: Path | str) -> pd.DataFrame:
    """The saved outcome rows of a run as one DataFrame, one column per flat field.

    Holds the whole run in memory: :func:`replay.compare.classify` reads the file in
    chunks instead (:func:`iter_outcome_chunks`).
    """
    frames = list(iter_outcome_chunks(report_folder, chunk_rows=1 << 62))
    if not frames:
        return pd.DataFrame(columns=list(IDENTITY_COLUMNS))
    return frames[0]


def iter_outcome_chunks(
    report_folder: Path | str, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The saved outcome rows of a run, ``chunk_rows`` lines per DataFrame, in file order."""
    path = outcomes_path(report_folder)
    rows: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise BadInput(f"unreadable outcomes in {path}: line {number}: {exc}") from None
            if not isinstance(row, dict):
                raise BadInput(f"unreadable outcomes in {path}: line {number} is not an object")
            rows.append(row)
            if len(rows) >= chunk_rows:
                yield _frame(rows, path)
                rows = []
    if rows:
        yield _frame(rows, path)


def _frame(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    keys = dict.fromkeys(rows[0])
    for row in rows:
        if len(row) != len(keys) or row.keys() != keys.keys():
            keys.update(dict.fromkeys(row))
    frame = pd.DataFrame({key: [row.get(key) for row in rows] for key in keys})
    check_columns(frame, path)
    return frame


def check_columns(frame: pd.DataFrame, path: Path | str) -> None:
    """Bad input unless ``frame`` has every identity field of an outcome row."""
    missing = [c for c in IDENTITY_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"outcomes in {path} lack the fields {', '.join(missing)}")
