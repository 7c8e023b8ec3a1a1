"""Several worker processes sharing one replay, each an event loop of its own.

One interpreter lock serializes everything a replay does in Python (building, digesting
and writing each outcome row); on a machine with several CPUs, worker processes each
take a share of the sessions. They are forked (the split capture, the targets and the
pacer's clock are inherited, nothing is pickled), take the next session from a shared
counter, so a worker that finishes early takes more, and write their rows to a part
file of their own, merged into ``outcomes.jsonl`` at the end
(:func:`replay.model.outcomes.merge_parts`). ``jobs`` (sessions in flight) is divided among
them, so memory stays bounded by it. Each worker makes its own row sink, if asked for
one (:mod:`replay.engine.sink`), and sends it back with its totals; the parent merges them.

The parent only reports progress. On Ctrl-C (which the workers get too) or any error it
sets the shared stop flag, waits for the workers to cancel and drop what they run, and
re-raises; a worker that does not stop is killed.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from replay.capture.split import SessionFile, SplitCapture
from replay.engine.loop import Stopped, Tally, Worker
from replay.engine.session import Pacer
from replay.engine.sink import SinkT
from replay.engine.startup import Timeouts
from replay.model.outcomes import OutcomeWriter, merge_parts
from replay.targets.target import Target

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
# rows, counts by target, failed sessions, and the workers' row sinks merged (None when
# not asked for, or when a worker could not hand its sink over)
Totals = tuple[int, dict[str, Counter[str]], int, SinkT | None]
PROGRESS_INTERVAL = 0.1
STOP_GRACE = 30.0


def _share(jobs: int, processes: int, index: int) -> int:
    return jobs // processes + (1 if index < jobs % processes else 0)


def _work(
    index: int,
    sessions: list[SessionFile],
    targets: list[Target],
    out: Path,
    slots: int,
    timeouts: Timeouts,
    pacer: Pacer | None,
    depth: int,
    timing: tuple[int, int],
    sink: Callable[[], SinkT] | None,
    shared: dict[str, Any],
    report: Connection,
) -> None:
    """A worker process: replay sessions until none is left, then report its totals."""
    taken, done, stop = shared["taken"], shared["done"], shared["stop"]

    def take() -> SessionFile | None:
        with taken.get_lock():
            position = taken.value
            if position >= len(sessions):
                return None
            taken.value = position + 1
        return sessions[position]

    reported = 0

    def tick() -> None:
        nonlocal reported
        with done.get_lock():
            done.value += tally.statements - reported
        reported = tally.statements

    failures = 0
    with OutcomeWriter(out, part=index) as writer:
        tally = Tally(writer, sink() if sink is not None else None)
        worker = Worker(
            targets,
            timeouts,
            slots,
            take,
            tally.emit,
            pacer,
            stop=stop.is_set,
            tick=tick,
            depth=depth,
            timing=timing,
        )
        try:
            failures = worker.run()
        except (Stopped, KeyboardInterrupt):
            pass
        finally:
            tick()
        tally.fold()
    by_target = {k: dict(v) for k, v in tally.status.items()}
    report.send((tally.statements, by_target, failures, tally.sink))
    report.close()


def replay_in_processes(
    split: SplitCapture,
    targets: list[Target],
    out: Path,
    *,
    jobs: int,
    timeouts: Timeouts,
    pacer: Pacer | None,
    processes: int,
    progress: Progress | None,
    depth: int = 1,
    timing: tuple[int, int] = (0, 1),
    sink: Callable[[], SinkT] | None = None,
) -> Totals[SinkT]:
    """Replay ``split`` with ``processes`` workers; rows, counts by target, failures,
    and the workers' sinks merged."""
    context = multiprocessing.get_context("fork")
    shared: dict[str, Any] = {
        "taken": context.Value("q", 0),
        "done": context.Value("q", 0),
        "stop": context.Event(),
    }
    out.mkdir(parents=True, exist_ok=True)
    children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for index in range(processes):
            receive, send = context.Pipe(duplex=False)
            child: multiprocessing.process.BaseProcess = context.Process(
                target=_work,
                args=(
                    index,
                    split.sessions,
                    targets,
                    out,
                    _share(jobs, processes, index),
                    timeouts,
                    pacer,
                    depth,
                    timing,
                    sink,
                    shared,
                    send,
                ),
                name=f"replay-worker-{index}",
                daemon=True,
            )
            child.start()
            send.close()
            children.append((child, receive))
        totals = _wait(children, shared, split.statements, progress, sink)
    except BaseException:
        shared["stop"].set()
        for child, _ in children:
            child.join(STOP_GRACE)
            if child.is_alive():
                child.kill()
                child.join()
        raise
    finally:
        merge_parts(out, processes)
    return totals


def _wait(
    children: list[tuple[multiprocessing.process.BaseProcess, Connection]],
    shared: dict[str, Any],
    total: int,
    progress: Progress | None,
    sink: Callable[[], SinkT] | None = None,
) -> Totals[SinkT]:
    statements, failures = 0, 0
    status: dict[str, Counter[str]] = {}
    merged = sink() if sink is not None else None
    for child, receive in children:
        while not receive.poll(PROGRESS_INTERVAL):
            if progress is not None:
                progress(shared["done"].value, total)
            if not child.is_alive() and not receive.poll(0):
                break
        try:
            rows, by_target, failed, folded = receive.recv()
        except EOFError:  # the worker died without a word: its sessions are not all done
            log.error("replay worker %s died (exit %s)", child.name, child.exitcode)
            rows, by_target, failed, folded = 0, {}, 1, None
        child.join()
        if merged is not None and folded is not None:
            merged.merge(folded)
        else:  # a share is missing: the caller reads the merged file instead
            merged = None
        statements += rows
        failures += failed
        for target, counts in by_target.items():
            status.setdefault(target, Counter()).update(counts)
    if progress is not None:
        progress(shared["done"].value, total)
    return statements, status, failures, merged
