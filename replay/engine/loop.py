"""One event loop replaying up to ``slots`` sessions at once, in one thread.

Each slot holds one connection per target and replays one session at a time, taking the
next session when its current one is done (a clean connection with the same startup is
reused). The loop waits on the sockets of every busy connection at once with
``poll(2)`` and hands each answer to its session as it arrives: no thread per session,
no lock and no GIL hand-over per statement. Every ``CHECK_INTERVAL`` it enforces the
watchdogs, asks whether to stop and calls ``tick`` (progress). One session that fails
unexpectedly is logged and counted; its slot's connections are dropped and the loop
goes on.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import select
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from replay.capture.split import SessionFile, read_session, read_statements
from replay.engine.lane import Lane
from replay.engine.pipeline import PipelinedConnection, encrypted
from replay.engine.session import Emit, Pacer, SessionRun, Timing
from replay.engine.sink import CHUNK_ROWS, RowSink
from replay.engine.startup import Timeouts, open_connection
from replay.engine.target import TargetConnection
from replay.model.outcomes import OutcomeRow, OutcomeWriter
from replay.targets.target import Target

log = logging.getLogger(__name__)
_T = TypeVar("_T")
CHECK_INTERVAL = 0.2
GC_THRESHOLD = 10_000
_EVENTS = select.POLLIN | select.POLLPRI


class Tally:
    """The end of one worker's rows: its outcome file (or part), its counters and, when
    given a :class:`~replay.engine.sink.RowSink`, that sink: rows are handed to it a
    chunk at a time as they are written, so that each worker folds its own share in
    parallel, and nobody parses ``outcomes.jsonl`` again for it."""

    def __init__(self, writer: OutcomeWriter, sink: RowSink | None = None) -> None:
        self.writer = writer
        self.sink = sink
        self.statements = 0
        self.status: dict[str, Counter[str]] = {}
        self._pending: list[dict[str, Any]] = []

    def emit(self, row: OutcomeRow) -> None:
        flat = row.to_flat()
        self.writer.write_flat(flat)
        if self.sink is not None:
            self._pending.append(flat)
            if len(self._pending) >= CHUNK_ROWS:
                self.fold()
        self.statements += 1
        status = self.status
        for target, outcome in row.outcomes.items():
            counter = status.get(target)
            if counter is None:
                counter = status[target] = Counter()
            counter[outcome.status] += 1

    def fold(self) -> None:
        """Hand the rows written since the last fold to the sink."""
        if self.sink is not None and self._pending:
            self.sink.add_rows(self._pending, self.writer.path)
        self._pending = []


@dataclass(eq=False)
class _Slot:
    lanes: list[Lane]
    run: SessionRun | None = None
    item: SessionFile | None = None
    due: float = math.inf  # monotonic time a paced statement of its run is due


@dataclass
class Worker:
    """Replays the sessions ``take`` hands out until it hands out None."""

    targets: list[Target]
    timeouts: Timeouts
    slots: int
    take: Callable[[], SessionFile | None]
    emit: Emit
    pacer: Pacer | None = None
    stop: Callable[[], bool] = lambda: False
    tick: Callable[[], None] = lambda: None
    depth: int = 1  # statements a session may have in flight per connection
    timing: tuple[int, int] = (0, 1)  # timed per query class: the first N, then 1 in M
    failures: int = 0
    _timing: Timing | None = None
    _poller: Any = field(default_factory=select.poll)
    _watched: dict[int, tuple[_Slot, Lane]] = field(default_factory=dict)

    def run(self) -> int:
        """Replay every session; the number of sessions that failed."""
        with rare_collections():
            return self._run()

    def _run(self) -> int:
        pipelined = {t.name: self.depth > 1 and _plaintext(t, self.timeouts) for t in self.targets}
        self._timing = Timing(*self.timing) if any(pipelined.values()) else None
        slots = [
            _Slot([Lane(t.name, self._connection(t, pipelined[t.name])) for t in self.targets])
            for _ in range(max(1, self.slots))
        ]
        try:
            self._loop(slots)
        except BaseException:
            for slot in slots:
                if slot.run is not None:
                    slot.run.abandon()
            raise
        finally:
            for slot in slots:
                self._unwatch(slot)
                for lane in slot.lanes:
                    lane.connection.close()
        return self.failures

    def _connection(
        self, target: Target, pipelined: bool
    ) -> TargetConnection | PipelinedConnection:
        if pipelined:
            return PipelinedConnection(target, self.timeouts, self.depth)
        return TargetConnection(target, self.timeouts)

    def _loop(self, slots: list[_Slot]) -> None:
        exhausted = False
        next_check = time.monotonic() + CHECK_INTERVAL
        while True:
            if not exhausted:
                for slot in slots:
                    if slot.run is None and not exhausted:
                        exhausted = not self._begin(slot)
            busy = [slot for slot in slots if slot.run is not None]
            if not busy and exhausted:
                return
            now = time.monotonic()
            due = min((slot.due for slot in busy), default=math.inf)
            timeout = max(0.0, min(due, next_check) - now)
            poller, watched = self._poller, self._watched
            for fd, _ in poller.poll(math.ceil(timeout * 1000)):
                found = watched.get(fd)  # an earlier answer may have ended its session
                if found is None or not found[1].busy or found[0].run is None:
                    continue
                slot, lane = found
                self._guard(slot, slot.run.answer, lane)  # type: ignore[union-attr]
                if slot.run is not None:
                    self._advance(slot)
            now = time.monotonic()
            for slot in busy:
                if slot.due <= now and slot.run is not None:
                    self._advance(slot)
            if now >= next_check:
                next_check = now + CHECK_INTERVAL
                self._check(slots)

    def _check(self, slots: list[_Slot]) -> None:
        """Watchdogs, stop and progress, every CHECK_INTERVAL."""
        now = time.perf_counter()
        for slot in slots:
            for lane in slot.lanes:
                run = slot.run
                if run is None or not lane.busy:
                    continue
                if self._guard(slot, run.answer, lane, now) and slot.run is not None:
                    self._advance(slot)
        if self.stop():
            raise Stopped
        self.tick()

    def _begin(self, slot: _Slot) -> bool:
        """Start the next session in ``slot``; False when there is none left."""
        item = self.take()
        if item is None:
            return False
        slot.item = item
        try:
            slot.run = SessionRun(
                slot.lanes,
                read_session(item.path),
                read_statements(item.path),
                self.emit,
                pacer=self.pacer,
                timing=self._timing,
            )
        except Exception:
            self._fail(slot)
            return True
        self._advance(slot)
        return True

    def _advance(self, slot: _Slot) -> None:
        run = slot.run
        assert run is not None
        wait = self._guard(slot, run.advance)
        if slot.run is None:  # it failed
            return
        slot.due = time.monotonic() + wait if wait is not None else math.inf
        self._watch(slot)
        if run.finished:
            slot.run = slot.item = None
            slot.due = math.inf

    def _guard(self, slot: _Slot, call: Callable[..., _T], *args: object) -> _T | None:
        try:
            return call(*args)
        except Exception:
            self._fail(slot)
            return None

    def _fail(self, slot: _Slot) -> None:
        name = slot.item.path.name if slot.item is not None else "?"
        log.exception("session %s failed; the run goes on", name)
        self.failures += 1
        self._unwatch(slot)
        for lane in slot.lanes:
            lane.sent = lane.position
            lane.connection.close()
        slot.run = slot.item = None
        slot.due = math.inf

    def _watch(self, slot: _Slot) -> None:
        """Watch the sockets of the slot's busy lanes, and only those: for answers, and
        for room to write when requests wait to be written."""
        for lane in slot.lanes:
            connection = lane.connection
            want = connection.socket if lane.busy else -1
            events = _EVENTS | select.POLLOUT if connection.wants_write else _EVENTS
            if want == lane.fd:
                if want >= 0 and events != lane.events:
                    self._poller.modify(want, events)
                    lane.events = events
                continue
            self._drop(lane)
            if want >= 0:
                self._poller.register(want, events)
                self._watched[want] = (slot, lane)
                lane.fd, lane.events = want, events

    def _unwatch(self, slot: _Slot) -> None:
        for lane in slot.lanes:
            self._drop(lane)

    def _drop(self, lane: Lane) -> None:
        fd = lane.fd
        if fd >= 0 and self._watched.get(fd, (None, None))[1] is lane:
            del self._watched[fd]
            self._poller.unregister(fd)
        lane.fd = -1


@contextlib.contextmanager
def rare_collections(threshold: int = GC_THRESHOLD) -> Iterator[None]:
    """The cyclic garbage collector made rare while a worker replays.

    A replay allocates millions of short-lived objects (statements, requests, outcomes,
    rows) and, with the default first threshold of 700 allocations, the collector ran
    about 370 passes per 16,000 statements in each worker, a fifth of its CPU. The
    objects every worker already holds (the imported modules) are frozen out of the
    passes, and passes come every ``threshold`` allocations, so cyclic garbage (the
    replay makes little) is still collected, within that bound.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


class Stopped(Exception):
    """Raised out of :meth:`Worker.run` when its owner asked it to stop."""


def _plaintext(target: Target, timeouts: Timeouts) -> bool:
    """Whether connections to ``target`` are unencrypted, so that the replay may use
    their sockets itself (asked once per worker with a connection of its own)."""
    pgconn, _startup, _error = open_connection(target.conninfo, None, timeouts)
    if pgconn is None:
        return False
    try:
        return not encrypted(pgconn)
    finally:
        pgconn.finish()
