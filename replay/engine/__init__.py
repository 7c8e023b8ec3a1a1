"""The replay engine: captured sessions re-sent faithfully to every target.

:func:`replay` replays the per-session files that
:func:`replay.capture.split.split_capture` made, concurrently, each session on its own
connection per target, writing one :class:`replay.model.outcomes.OutcomeRow` per
statement.
"""

from __future__ import annotations

from replay.engine.pipeline import DEPTH
from replay.engine.runner import EngineOptions, ReplayCounts, replay
from replay.engine.startup import Timeouts

__all__ = [
    "DEPTH",
    "EngineOptions",
    "ReplayCounts",
    "Timeouts",
    "replay",
]
