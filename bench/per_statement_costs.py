"""What the replay's own steps cost per statement, on this machine, without a server.

Run from the repository root (a few seconds)::

    .venv/bin/python bench/per_statement_costs.py [--statements 20000]

Each step of ``replay run``'s per-statement work is timed on pgbench-like statements
(simple protocol, a new inlined value each time, one int4 row each answer), best of 5
loops, in microseconds per statement: the budget the ceiling row of
``bench/replay_vs_pgreplay.py`` leaves a two-target replayer is spent against these.
A benchmark, not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table

from replay.compare.accumulate import Accumulator
from replay.compare.verdict import Thresholds
from replay.engine.encode import wire
from replay.engine.session import _row
from replay.model.outcomes import TargetOutcome
from replay.model.records import Statement
from replay.sql import fingerprint as fingerprints
from replay.wire.digest import RowDigest

T = TypeVar("T")
ROW = b"\x00\x01\x00\x00\x00\x04-123"  # a DataRow body: one int4 column as text


def each(function: Callable[[T], object], items: Sequence[T]) -> Callable[[], None]:
    """A step that calls ``function`` on every item, keeping no result (as the replay
    keeps none: a list of results would make the cyclic collector's passes the cost)."""

    def step() -> None:
        for item in items:
            function(item)

    return step


def best(step: Callable[[], object], count: int, before: Callable[[], None] | None = None) -> float:
    """Microseconds per statement of ``step`` (which handles ``count`` statements)."""
    fastest = float("inf")
    for _ in range(5):
        if before is not None:
            before()
        started = time.perf_counter()
        step()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=20_000)
    args = parser.parse_args()
    n = args.statements
    rng = random.Random(1)
    statements = [
        Statement(
            session=f"s{i % 8}",
            seq=i,
            start=1.8e9 + i / 1000,
            sql=f"SELECT abalance FROM pgbench_accounts WHERE aid = {rng.randrange(10**6)};",
            tag="SELECT 1",
            rows=1,
            columns=[("abalance", 23)],
            tx_status="I",
        )
        for i in range(n)
    ]
    lines = [orjson.dumps(s.to_json()) for s in statements]
    rows = [_row(s, "pgbench") for s in statements]
    for row in rows:
        row.outcomes = {
            target: TargetOutcome(
                status="ok", tag="SELECT 1", rows=1, columns='[["abalance",23]]',
                digest="a" * 32, digest_unordered="b" * 32, duration=None,
            )
            for target in ("baseline", "candidate")
        }  # fmt: skip
    flats = [row.to_flat() for row in rows]
    # The same statements where the candidate returned other rows: judged ``changed``.
    differing = [{**flat, "candidate_digest": "c" * 32} for flat in flats]

    def digests() -> None:
        for _ in range(n):
            digest = RowDigest()
            digest.add_datarow(ROW)
            _ = digest.ordered, digest.unordered

    def fold(rows: list[dict[str, object]]) -> Callable[[], None]:
        def step() -> None:
            acc = Accumulator(Thresholds(), 3)
            for at in range(0, n, 10_000):
                acc.add_rows(rows[at : at + 10_000], "bench")

        return step

    steps = [
        ("captured line -> Statement (orjson + record)",
         best(each(lambda line: Statement.from_json(orjson.loads(line)), lines), n)),
        ("query class (fingerprint), new text each time",
         best(each(lambda s: fingerprints.fingerprint(s.sql), statements), n,
              fingerprints._CLASSES.clear)),
        ("request bytes (wire)", best(each(wire, statements), n)),
        ("outcome row (identity, cached class, ORDER BY)",
         best(each(lambda s: _row(s, "pgbench"), statements), n)),
        ("row digests of one 1-row result (x2 targets)", 2 * best(digests, n)),
        ("outcome row flattened + JSON line",
         best(each(lambda r: orjson.dumps(r.to_flat()), rows), n)),
        ("classification, rows answered alike", best(fold(flats), n)),
        ("classification, rows that differ (changed)", best(fold(differing), n)),
    ]  # fmt: skip
    print(table(["step", "us per statement"], [[name, f"{us:.1f}"] for name, us in steps]))
    print(f"\n{n} statements, best of 5 loops each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
