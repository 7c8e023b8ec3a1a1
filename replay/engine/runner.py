"""Replaying a split capture: sessions concurrently, up to ``jobs`` at a time.

The sessions are replayed by event loops (:class:`replay.engine.loop.Worker`), each
driving many sessions over their connections without a thread per session. With one
worker the loop runs in the calling thread; with several (one per CPU by default),
each is a process of its own (:mod:`replay.engine.processes`), so that building and
writing outcome rows is not serialized on one interpreter lock. Sessions are handed
out in order of first statement, the next one to whichever slot is free first.

The engine sends and records, and judges nothing: a caller that wants the rows as they
are written (to classify them) passes a factory of row sinks
(:mod:`replay.engine.sink`), and gets the workers' sinks merged in
:attr:`ReplayCounts.sink`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, overload

from replay.capture.split import SplitCapture
from replay.engine.loop import Tally, Worker
from replay.engine.pipeline import DEPTH
from replay.engine.processes import Totals, replay_in_processes
from replay.engine.session import FIRST_TIMED, TIME_EVERY, Pacer
from replay.engine.sink import RowSink, SinkT
from replay.engine.startup import Timeouts
from replay.model.outcomes import OutcomeWriter
from replay.targets.target import Target

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EngineOptions:
    """``jobs``: sessions in flight at once; ``processes``: worker processes sharing
    them (None: one per CPU); ``speed``: captured pace divided by it (0: as fast as
    possible); ``depth``: statements a session may have in flight on one connection
    (1: each waits for the previous one's answer, and every statement is timed)."""

    jobs: int = 4
    speed: float = 0.0
    timeouts: Timeouts = field(default_factory=Timeouts)
    processes: int | None = None
    depth: int = DEPTH
    # Statements timed per query class: the first N, then one in M (0: none).
    timing: tuple[int, int] = (FIRST_TIMED, TIME_EVERY)


@dataclass
class ReplayCounts(Generic[SinkT]):
    """What the replay did, for run.json and the terminal summary; ``sink``: every row,
    in the sinks the workers made, merged (None when no factory was given, or when a
    worker died before handing its sink over: the rows are then only in the file)."""

    sessions: int = 0
    statements: int = 0
    failed_sessions: int = 0
    elapsed: float = 0.0
    by_target: dict[str, dict[str, int]] = field(default_factory=dict)
    sink: SinkT | None = None

    @property
    def statements_per_second(self) -> float:
        return self.statements / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "sessions": self.sessions,
            "statements": self.statements,
            "failed_sessions": self.failed_sessions,
            "elapsed": round(self.elapsed, 3),
            "statements_per_second": round(self.statements_per_second, 1),
            "by_target": self.by_target,
        }


def workers_for(options: EngineOptions, sessions: int) -> int:
    """How many worker processes: ``options.processes``, else one per CPU, never more
    than sessions may run at once."""
    wanted = options.processes or os.cpu_count() or 1
    return max(1, min(wanted, options.jobs, sessions))


@overload
def replay(
    split: SplitCapture,
    targets: list[Target],
    out: Path | str,
    options: EngineOptions | None = None,
    progress: Progress | None = None,
    *,
    sink: None = None,
) -> ReplayCounts[RowSink]: ...


@overload
def replay(
    split: SplitCapture,
    targets: list[Target],
    out: Path | str,
    options: EngineOptions | None = None,
    progress: Progress | None = None,
    *,
    sink: Callable[[], SinkT],
) -> ReplayCounts[SinkT]: ...


def replay(
    split: SplitCapture,
    targets: list[Target],
    out: Path | str,
    options: EngineOptions | None = None,
    progress: Progress | None = None,
    *,
    sink: Callable[[], SinkT] | None = None,
) -> ReplayCounts[SinkT]:
    """Replay every session of ``split`` against ``targets``; outcomes into ``out``.

    ``sink``: called once per worker for a :class:`~replay.engine.sink.RowSink` that
    gets the rows as they are written (picklable, e.g. a :func:`functools.partial`).
    """
    options = options or EngineOptions()
    pacer = Pacer(options.speed, split.first) if options.speed > 0 else None
    started = time.perf_counter()
    processes = workers_for(options, len(split.sessions))
    if processes > 1:
        statements, status, failures, merged = replay_in_processes(
            split,
            targets,
            Path(out),
            jobs=options.jobs,
            timeouts=options.timeouts,
            pacer=pacer,
            processes=processes,
            progress=progress,
            depth=options.depth,
            timing=options.timing,
            sink=sink,
        )
    else:
        statements, status, failures, merged = _replay_here(
            split, targets, out, options, pacer, progress, sink
        )
    counts = ReplayCounts(
        sessions=len(split.sessions),
        statements=statements,
        failed_sessions=failures,
        elapsed=time.perf_counter() - started,
        by_target={t: dict(c) for t, c in status.items()},
        sink=merged,
    )
    if progress is not None:
        progress(statements, split.statements)
    return counts


def _replay_here(
    split: SplitCapture,
    targets: list[Target],
    out: Path | str,
    options: EngineOptions,
    pacer: Pacer | None,
    progress: Progress | None,
    sink: Callable[[], SinkT] | None,
) -> Totals[SinkT]:
    """One event loop in the calling thread (Ctrl-C stops it where it is)."""
    sessions = iter(split.sessions)
    rows = sink() if sink is not None else None
    with OutcomeWriter(out) as writer:
        tally = Tally(writer, rows)
        worker = Worker(
            targets,
            options.timeouts,
            slots=min(options.jobs, len(split.sessions)),
            take=lambda: next(sessions, None),
            emit=tally.emit,
            pacer=pacer,
            depth=options.depth,
            timing=options.timing,
            tick=(lambda: progress(tally.statements, split.statements)) if progress else _nothing,
        )
        failures = worker.run()
        tally.fold()
    return tally.statements, tally.status, failures, rows


def _nothing() -> None:
    pass
