"""Reading a run's ``outcomes.jsonl`` with pandas, whole or a bounded chunk at a time.

:func:`iter_outcome_chunks` is what classification uses: one DataFrame per
``chunk_rows`` lines, so that memory follows the chunk, not the capture. Both readers
parse the same way (``pd.read_json(lines=True, dtype=False)``), so a chunk's cells are
the values the whole frame would hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
    path = outcomes_path(report_folder)
    try:
        if path.stat().st_size == 0:
            return pd.DataFrame(columns=list(IDENTITY_COLUMNS))
        frame = pd.read_json(path, lines=True, dtype=False)
    except ValueError as exc:
        raise BadInput(f"unreadable outcomes in {path}: {exc}") from None
    check_columns(frame, path)
    return frame


def iter_outcome_chunks(
    report_folder: Path | str, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The saved outcome rows of a run, ``chunk_rows`` lines per DataFrame, in file order."""
    path = outcomes_path(report_folder)
    if path.stat().st_size == 0:
        return
    try:
        with pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows) as reader:
            for chunk in reader:
                check_columns(chunk, path)
                yield chunk
    except ValueError as exc:
        raise BadInput(f"unreadable outcomes in {path}: {exc}") from None


def check_columns(frame: pd.DataFrame, path: Path | str) -> None:
    """Bad input unless ``frame`` has every identity field of an outcome row."""
    missing = [c for c in IDENTITY_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"outcomes in {path} lack the fields {', '.join(missing)}")
