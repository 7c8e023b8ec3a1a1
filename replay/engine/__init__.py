"""The replay engine: captured sessions re-sent faithfully to every target.

:func:`replay` replays the per-session files that
:func:`replay.capture.split.split_capture` made, concurrently, each session on its own
connection per target, writing one :class:`replay.model.outcomes.OutcomeRow` per
statement. It judges nothing: a caller that wants the rows as they are written passes
a factory of :class:`~replay.engine.sink.RowSink` (one per worker, merged at the end).
"""

from __future__ import annotations

from replay.engine.pipeline import DEPTH
from replay.engine.runner import EngineOptions, ReplayCounts, replay
from replay.engine.sink import RowSink
from replay.engine.startup import Timeouts

__all__ = [
    "DEPTH",
    "EngineOptions",
    "ReplayCounts",
    "RowSink",
    "Timeouts",
    "replay",
]
