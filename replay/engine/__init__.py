"""The replay engine: captured sessions re-sent faithfully to every target.

:func:`split_capture` streams a capture into per-session files (memory bounded by the
sessions open at once), :func:`replay` replays them concurrently, each session on its
own connection per target, writing one :class:`replay.outcomes.OutcomeRow` per
statement.
"""

from __future__ import annotations

from replay.engine.pipeline import DEPTH
from replay.engine.runner import EngineOptions, ReplayCounts, replay
from replay.engine.split import Selection, SplitCapture, split_capture
from replay.engine.startup import Timeouts

__all__ = [
    "DEPTH",
    "EngineOptions",
    "ReplayCounts",
    "Selection",
    "SplitCapture",
    "Timeouts",
    "replay",
    "split_capture",
]
