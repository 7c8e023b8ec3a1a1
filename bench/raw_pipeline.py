"""The ceiling of any replayer on this machine: captured statements sent, answers counted.

Not a replayer: a yardstick for the replay benchmark. It sends every captured statement's
exact request bytes (built by ``replay.engine.encode.wire`` before the clock starts) to
every target, each session on its own connection per target, up to ``depth`` statements
in flight, and reads the answers only to count their ReadyForQuery messages: no outcome,
no digest, no comparison, nothing written. Its client costs next to nothing, so its
statements/s is what the server sustains executing the workload on all the targets at
once: no replayer that runs every statement on those targets, in any language, goes
faster on the same machine.

Only plain requests are sent (what the pipelined replay sends ahead of answers: no
COPY, no named Parse, no DEALLOCATE); the others are counted as left out.
"""

from __future__ import annotations

import os
import resource
import select
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from replay.capture.split import read_statements, split_capture
from replay.engine.encode import wire

_LENGTH = struct.Struct("!I")


@dataclass
class RawResult:
    statements: int  # statements sent to every target
    left_out: int  # statements not sendable ahead of answers (not sent)
    wall_s: float
    client_cpu_s: float  # this process's own CPU while sending and counting

    @property
    def per_s(self) -> float:
        return self.statements / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class _Lane:
    fd: int
    requests: list[bytes]
    sent: int = 0
    answered: int = 0
    out: bytes = b""
    buffer: bytes = b""

    def count(self, data: bytes) -> None:
        """Count the ReadyForQuery messages in what arrived (walking message lengths)."""
        buffer = self.buffer + data if self.buffer else data
        pos, size = 0, len(buffer)
        while size - pos >= 5:
            (length,) = _LENGTH.unpack_from(buffer, pos + 1)
            if pos + 1 + length > size:
                break
            if buffer[pos] == 0x5A:  # Z
                self.answered += 1
            pos += 1 + length
        self.buffer = buffer[pos:]


def requests_of(capture: Path) -> tuple[list[list[bytes]], int]:
    """Every session's request bytes, in captured order, and how many were left out."""
    sessions: list[list[bytes]] = []
    left_out = 0
    with tempfile.TemporaryDirectory(prefix="raw-split-") as folder:
        split = split_capture(capture, folder)
        for item in split.sessions:
            requests = []
            for statement in read_statements(item.path):
                shared = wire(statement) if statement.replayable else None
                if shared is None or shared.exclusive or statement.batch_index > 0:
                    left_out += 1
                    continue
                requests.append(shared.data)
            sessions.append(requests)
    return sessions, left_out


def raw_replay(capture: Path, urls: list[str], depth: int = 256) -> RawResult:
    """Send the capture's statements to every target in ``urls`` and count the answers."""
    sessions, left_out = requests_of(capture)
    connections = []
    lanes: list[_Lane] = []
    for requests in sessions:
        for url in urls:
            connection = psycopg.connect(url, autocommit=True)
            connection.pgconn.nonblocking = 1
            connections.append(connection)
            lanes.append(_Lane(connection.pgconn.socket, requests))
    by_fd = {lane.fd: lane for lane in lanes}
    poller = select.poll()
    for lane in lanes:
        poller.register(lane.fd, select.POLLIN)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    busy = [lane for lane in lanes if lane.requests]
    try:
        while busy:
            for lane in busy:
                in_flight = lane.sent - lane.answered
                if lane.sent < len(lane.requests) and in_flight <= depth // 2:
                    upto = min(len(lane.requests), lane.answered + depth)
                    lane.out += b"".join(lane.requests[lane.sent : upto])
                    lane.sent = upto
                if lane.out:
                    try:
                        written = os.write(lane.fd, lane.out)
                        lane.out = lane.out[written:]
                    except BlockingIOError:
                        pass
                want = select.POLLIN | (select.POLLOUT if lane.out else 0)
                poller.modify(lane.fd, want)
            for fd, _events in poller.poll(100):
                lane = by_fd[fd]
                try:
                    data = os.read(fd, 1 << 18)
                except BlockingIOError:
                    continue
                if not data:
                    raise RuntimeError("a target closed a connection")
                lane.count(data)
            busy = [lane for lane in busy if lane.answered < len(lane.requests)]
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for connection in connections:
            connection.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    statements = sum(len(requests) for requests in sessions)
    return RawResult(statements, left_out, wall, cpu)


if __name__ == "__main__":
    import sys

    result = raw_replay(Path(sys.argv[1]), sys.argv[2:])
    print(
        f"{result.statements} statements to {len(sys.argv) - 2} targets in "
        f"{result.wall_s:.2f} s: {result.per_s:,.0f}/s, client CPU {result.client_cpu_s:.2f} s"
        f" ({result.left_out} left out)"
    )
