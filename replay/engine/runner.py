"""Replaying a split capture: sessions concurrently, up to ``jobs`` at a time.

Each worker thread holds one connection per target and replays one session at a
time, taking the next session in order of first statement. Rows go to the outcome
file as they are produced; the calling thread only waits, reports progress and, on
Ctrl-C, stops the workers (cancelling their running statements) before re-raising.
One session that fails unexpectedly is logged and counted; the run goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from replay.engine.session import Pacer, SessionReplay
from replay.engine.split import SessionFile, SplitCapture, read_session, read_statements
from replay.engine.startup import Timeouts
from replay.engine.target import TargetConnection
from replay.outcomes import OutcomeRow, OutcomeWriter
from replay.safety import Target

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EngineOptions:
    jobs: int = 4
    speed: float = 0.0
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class ReplayCounts:
    """What the replay did, for run.json and the terminal summary."""

    sessions: int = 0
    statements: int = 0
    failed_sessions: int = 0
    elapsed: float = 0.0
    by_target: dict[str, dict[str, int]] = field(default_factory=dict)

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


class _Sink:
    """The thread-safe end of the replay: the outcome file and the counters."""

    def __init__(self, writer: OutcomeWriter) -> None:
        self.writer = writer
        self.lock = threading.Lock()
        self.statements = 0
        self.status: dict[str, Counter[str]] = {}

    def emit(self, row: OutcomeRow) -> None:
        with self.lock:
            self.writer.write(row)
            self.statements += 1
            for target, outcome in row.outcomes.items():
                self.status.setdefault(target, Counter())[outcome.status] += 1


class _Queue:
    def __init__(self, sessions: list[SessionFile]) -> None:
        self._iter: Iterator[SessionFile] = iter(sessions)
        self._lock = threading.Lock()

    def next(self) -> SessionFile | None:
        with self._lock:
            return next(self._iter, None)


def replay(
    split: SplitCapture,
    targets: list[Target],
    out: Path | str,
    options: EngineOptions | None = None,
    progress: Progress | None = None,
) -> ReplayCounts:
    """Replay every session of ``split`` against ``targets``; outcomes into ``out``."""
    options = options or EngineOptions()
    stop = threading.Event()
    queue = _Queue(split.sessions)
    counts = ReplayCounts()
    failures: list[int] = []
    pacer = Pacer(options.speed, split.first) if options.speed > 0 else None
    started = time.perf_counter()
    with OutcomeWriter(out) as writer:
        sink = _Sink(writer)

        def work() -> None:
            connections = {t.name: TargetConnection(t, options.timeouts) for t in targets}
            replayer = SessionReplay(connections, sink.emit, stop=stop, pacer=pacer)
            try:
                while not stop.is_set() and (item := queue.next()) is not None:
                    try:
                        replayer.run(read_session(item.path), read_statements(item.path))
                    except Exception:
                        log.exception("session %s failed; the run goes on", item.path.name)
                        failures.append(1)
                        for connection in connections.values():
                            connection.close()
            finally:
                for connection in connections.values():
                    connection.close()

        workers = [
            threading.Thread(target=work, name=f"replay-{i}", daemon=True)
            for i in range(max(1, min(options.jobs, len(split.sessions))))
        ]
        for worker in workers:
            worker.start()
        try:
            while any(w.is_alive() for w in workers):
                for worker in workers:
                    worker.join(0.1)
                if progress is not None:
                    progress(sink.statements, split.statements)
        except BaseException:
            stop.set()
            for worker in workers:
                worker.join(30)
            raise
        if progress is not None:
            progress(sink.statements, split.statements)
    counts.sessions = len(split.sessions)
    counts.statements = sink.statements
    counts.failed_sessions = len(failures)
    counts.elapsed = time.perf_counter() - started
    counts.by_target = {t: dict(c) for t, c in sink.status.items()}
    return counts
