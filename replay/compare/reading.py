"""Reading a run's ``outcomes.jsonl`` into pandas, whole or a bounded chunk at a time.

:func:`iter_outcome_rows` is what classification uses: the parsed lines ``chunk_rows``
at a time, so that memory follows the chunk, not the capture (the rows that need pandas
become a frame with :func:`frame_of`); :func:`iter_outcome_chunks` gives one DataFrame
per chunk. The frame readers
parse the same way, so a chunk's cells are the values the whole frame would hold: each
line with orjson, then one column per field (a field a line lacks is missing there),
and pandas infers each column's type as ``pd.read_json`` would. ``pd.read_json`` itself
reads the same file (it is plain JSON lines), but building its frame from a list of
dicts took half the classification's time.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from replay.errors import BadInput
from replay.model.outcomes import outcomes_path

IDENTITY_COLUMNS = ("session", "seq", "start", "fingerprint", "sql", "application_name")
CHUNK_ROWS = 10_000


def read_outcomes(report_folder: Path | str) -> pd.DataFrame:
    """The saved outcome rows of a run as one DataFrame, one column per flat field.

    Holds the whole run in memory: :func:`replay.compare.classify` reads the file in
    chunks instead (:func:`iter_outcome_rows`).
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
    for rows in iter_outcome_rows(report_folder, chunk_rows):
        with collection_paused():
            frame = _frame(rows, path)
        yield frame


def iter_outcome_rows(
    report_folder: Path | str, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[dict[str, Any]]]:
    """The saved outcome rows of a run as parsed lines (flat dicts), ``chunk_rows`` at a
    time, in file order."""
    path = outcomes_path(report_folder)
    with path.open("rb") as handle:
        numbered = enumerate(handle, 1)
        while True:
            with collection_paused():
                rows = _next_rows(numbered, path, chunk_rows)
            if not rows:
                return
            yield rows


def frame_of(rows: list[dict[str, Any]], origin: Path | str) -> pd.DataFrame:
    """The frame of flat outcome rows (as :meth:`OutcomeRow.to_flat` gives them), built
    exactly as from the lines they are written as; ``origin`` names them in errors."""
    with collection_paused():
        return _frame(rows, Path(origin))


def _next_rows(
    numbered: Iterator[tuple[int, bytes]], path: Path, chunk_rows: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for number, line in numbered:
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
            break
    return rows


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """The cyclic garbage collector off while building many acyclic objects (parsed
    lines): its passes over them cost as much as parsing them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _frame(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    """One column per field of ``rows``; most rows have the same fields as the first
    (a row has ``sample`` fields only where the targets' rows differ)."""
    first = rows[0].keys()
    keys = list(first)
    extra: dict[str, None] = {}
    for row in rows:
        if row.keys() != first:
            extra.update(dict.fromkeys(k for k in row if k not in first))
    getter = itemgetter(*keys)
    values = [
        getter(row) if row.keys() >= first else tuple(row.get(k) for k in keys) for row in rows
    ]
    if len(keys) == 1:
        values = [(value,) for value in values]
    columns: dict[str, list[Any]] = dict(
        zip(keys, map(list, zip(*values, strict=True)), strict=True)
    )
    for key in extra:
        columns[key] = [row.get(key) for row in rows]
    frame = pd.DataFrame(columns)
    check_columns(frame, path)
    return frame


def check_columns(frame: pd.DataFrame, path: Path | str) -> None:
    """Bad input unless ``frame`` has every identity field of an outcome row."""
    missing = [c for c in IDENTITY_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"outcomes in {path} lack the fields {', '.join(missing)}")
