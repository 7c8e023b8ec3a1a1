"""What the capture's decoder pays per message: one connection through ConnectionTracker.

Run from the repository root (about half a minute with the defaults)::

    .venv/bin/python bench/tracker_decode.py [--statements 20000] [--chunk 4096] [--no-digest]

The byte streams are built with :mod:`replay.wire.build`: a startup, then
``--statements`` simple-protocol Queries and as many extended-protocol
Parse/Bind/Describe/Execute/Sync exchanges (pgbench-like SELECTs, a new value each
time), each answered with RowDescription, three DataRows, CommandComplete and
ReadyForQuery (extended: ParseComplete and BindComplete first). Statements go in groups
of 32, as a pipelining client or a busy socket delivers them, and each group's bytes are
cut into chunks of ``--chunk`` bytes regardless of message boundaries, as a proxy reads
them: the client's chunks of a group, then the server's. One fresh tracker per run
takes every chunk (``client_data``/``server_data``) and hands its records out
(``pop_records``) after each server chunk, as the capture's decoder process does.
Reported: messages and statements per second, best of 5 runs, in CPU time of this
process (``time.process_time``: on a shared machine, other processes' load changes wall
time far more than the tracker's own cost; the wall time is printed too). A benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator

from replay.model.records import SessionEnd, Statement
from replay.wire import build as b
from replay.wire.tracker import ConnectionTracker

GROUP = 32
COLUMNS = [("aid", 23), ("bid", 23), ("abalance", 23), ("filler", 1042)]
SELECT = "SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid "
STARTUP = b.startup({"user": "bench", "database": "bench", "application_name": "bench"})
HELLO = (
    b.auth(0)
    + b.parameter_status("server_version", "17.0")
    + b.parameter_status("client_encoding", "UTF8")
    + b.backend_key_data(4242, bytes(4))
    + b.ready("I")
)


def _rows(rng: random.Random) -> bytes:
    out = b""
    for _ in range(3):
        aid = str(rng.randrange(10**6)).encode()
        out += b.data_row([aid, b"1", str(rng.randrange(-5000, 5000)).encode(), b" " * 84])
    return out


def _simple(rng: random.Random) -> tuple[bytes, bytes, int]:
    """One Query and its answer, with the number of messages in both."""
    low = rng.randrange(10**6)
    client = b.query(f"{SELECT}BETWEEN {low} AND {low + 2};")
    server = b.row_description(COLUMNS) + _rows(rng) + b.command_complete("SELECT 3")
    return client, server + b.ready("I"), 1 + 6


def _extended(rng: random.Random) -> tuple[bytes, bytes, int]:
    """One Parse/Bind/Describe/Execute/Sync and its answer, with the message count."""
    low = str(rng.randrange(10**6)).encode()
    client = (
        b.parse(f"{SELECT}BETWEEN $1 AND $1 + 2", types=[23])
        + b.bind([low])
        + b.describe("P")
        + b.execute()
        + b.sync()
    )
    server = b.parse_complete() + b.bind_complete() + b.row_description(COLUMNS)
    server += _rows(rng) + b.command_complete("SELECT 3") + b.ready("I")
    return client, server, 5 + 8


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def stream(statements: int, chunk: int) -> tuple[list[tuple[bool, bytes]], int]:
    """The chunks in arrival order as (from the client, bytes), and the message count."""
    rng = random.Random(1)
    events: list[tuple[bool, bytes]] = [(True, STARTUP), (False, HELLO)]
    messages = 1 + 5
    for kind in (_simple, _extended):
        for start in range(0, statements, GROUP):
            client, server = b"", b""
            for _ in range(min(GROUP, statements - start)):
                request, answer, count = kind(rng)
                client += request
                server += answer
                messages += count
            events += [(True, piece) for piece in _chunks(client, chunk)]
            events += [(False, piece) for piece in _chunks(server, chunk)]
    return events, messages


def run(events: list[tuple[bool, bytes]], digest_rows: bool) -> tuple[float, float, int]:
    """CPU and wall seconds to feed every chunk through one tracker, and the statements
    it recorded."""
    tracker = ConnectionTracker("bench", "127.0.0.1:5555", 0.0, digest_rows=digest_rows)
    client_data, server_data, pop = tracker.client_data, tracker.server_data, tracker.pop_records
    recorded = 0
    started, wall = time.process_time(), time.perf_counter()
    for from_client, data in events:
        if from_client:
            client_data(data, 1.0)
        else:
            server_data(data, 1.0)
            recorded += len(pop())
    elapsed, wall = time.process_time() - started, time.perf_counter() - wall
    records = tracker.close(2.0)
    end = records[-1]
    if not isinstance(end, SessionEnd) or not end.recorded:
        raise SystemExit(f"the tracker stopped recording: {tracker.reason}")
    recorded += sum(isinstance(r, Statement) for r in records)
    return elapsed, wall, recorded - 1  # the Session record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=20_000, help="of each protocol")
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per read")
    parser.add_argument("--no-digest", action="store_true", help="as capture --no-digest")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    events, messages = stream(args.statements, args.chunk)
    size = sum(len(data) for _, data in events)
    fastest, fastest_wall, recorded = float("inf"), float("inf"), 0
    for _ in range(args.runs):
        elapsed, wall, recorded = run(events, not args.no_digest)
        fastest, fastest_wall = min(fastest, elapsed), min(fastest_wall, wall)
    if recorded != 2 * args.statements:
        raise SystemExit(f"recorded {recorded} statements, expected {2 * args.statements}")
    print(
        f"{messages} messages ({size / 1e6:.1f} MB in {len(events)} chunks), "
        f"{recorded} statements, best of {args.runs}: {fastest:.3f} s CPU "
        f"({fastest_wall:.3f} s wall)\n"
        f"{messages / fastest:,.0f} messages/s  {recorded / fastest:,.0f} statements/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
