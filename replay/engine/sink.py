"""Where a worker's outcome rows go besides the outcome file: a row sink.

The engine sends and records; it knows nothing of verdicts. Whoever wants the rows
as they are written (``replay run`` classifies them: :class:`replay.compare.Accumulator`
is a row sink) hands :func:`replay.engine.replay` a factory of sinks. Each worker
calls it once and gives its sink the rows it writes, a chunk of ``CHUNK_ROWS`` at a
time, so that every worker folds its own share in parallel; the parent merges the
workers' sinks (whole sessions each, see docs/design.md) into one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

# Rows handed to a sink at once: large enough that a sink's per-chunk cost (the
# compare side builds a frame per chunk) is paid rarely, small enough that a worker
# holds little besides its connections.
CHUNK_ROWS = 10_000


class RowSink(Protocol):
    """Takes a worker's flat outcome rows as written; merges another worker's."""

    def add_rows(self, rows: list[dict[str, Any]], origin: Path | str) -> None:
        """Take a chunk of flat rows (:meth:`OutcomeRow.to_flat`) written to ``origin``."""

    def merge(self, other: Self) -> None:
        """Fold in the sink of another worker of the same replay."""


SinkT = TypeVar("SinkT", bound=RowSink)
