"""Reading a run's ``outcomes.jsonl`` a bounded chunk of rows at a time.

:func:`iter_outcome_rows` is what classification uses: the parsed lines (flat dicts, as
:meth:`replay.model.outcomes.OutcomeRow.to_flat` gives them) ``chunk_rows`` at a time, so
that memory follows the chunk, not the capture. Each line is parsed with orjson.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from replay.errors import BadInput
from replay.model.outcomes import outcomes_path

# The fields every outcome row has (the fold needs all but the application name).
IDENTITY_COLUMNS = ("session", "seq", "start", "fingerprint", "sql", "application_name")
CHUNK_ROWS = 10_000


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
    lines, a chunk's sets of sessions): its passes over them cost as much as making them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
