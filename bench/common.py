"""Helpers shared by the benchmark scripts in bench/ (not a benchmark itself).

Everything here starts processes on 127.0.0.1 only and knows how to stop them again:
pgbench runs with its output parsed, proxies (``replay capture`` or ``mitmdump``) run as
child processes stopped with SIGINT (like a user's Ctrl-C) and killed if that fails.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay.capture.process import wait_for_port
from replay.targets.server import EmbeddedServer, free_port, tool

VENV_BIN = Path(sys.executable).parent
MITMDUMP = str(VENV_BIN / "mitmdump")
ADDON = str(Path(__file__).resolve().parent.parent / "replay" / "capture" / "addon.py")


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    failed: int
    wall: float


_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_LAT = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_TX = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


def pgbench(url: str, *args: str, timeout: float = 600) -> PgbenchResult:
    """Run pgbench with ``args`` against ``url`` and parse its summary."""
    start = time.monotonic()
    proc = subprocess.run(
        [tool("pgbench"), *args, url],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.monotonic() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"pgbench {' '.join(args)} failed ({proc.returncode}):\n{tail}")
    out = proc.stdout
    tps, lat, tx = _TPS.search(out), _LAT.search(out), _TX.search(out)
    if not (tps and lat and tx):
        raise RuntimeError(f"cannot parse pgbench output:\n{out}")
    failed = _FAILED.search(out)
    return PgbenchResult(
        tps=float(tps.group(1)),
        latency_ms=float(lat.group(1)),
        transactions=int(tx.group(1)),
        failed=int(failed.group(1)) if failed else 0,
        wall=wall,
    )


def pgbench_init(url: str, scale: int) -> None:
    subprocess.run(
        [tool("pgbench"), "-i", "-q", "-s", str(scale), url],
        check=True,
        capture_output=True,
        timeout=900,
    )


def psql(url: str, sql: str) -> str:
    proc = subprocess.run(
        [tool("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"psql failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


class Proxy:
    """A proxy child process listening on a free 127.0.0.1 port; stop() sends SIGINT."""

    def __init__(self, name: str, argv_for_port: list[str], listen_port: int) -> None:
        self.name = name
        self.argv = argv_for_port
        self.port = listen_port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self.stderr = ""

    def start(self) -> Proxy:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            wait_for_port(self.port, None, timeout=60)
        except BaseException as exc:
            output = self.stop()
            raise RuntimeError(f"{self.name} did not start: {exc}\n{output[-2000:]}") from exc
        return self

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> str:
        """SIGINT, wait (the capture is flushed), kill if stuck; returns the proxy's output."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
            self.stderr = self.log.read_text(errors="replace")
            self.log.unlink(missing_ok=True)
        return self.stderr


def bare_relay(upstream_port: int) -> Proxy:
    port = free_port()
    argv = [
        MITMDUMP,
        "--mode",
        f"reverse:tcp://127.0.0.1:{upstream_port}@127.0.0.1:{port}",
        "--ignore-hosts",
        ".*",
        "-q",
    ]
    return Proxy("bare-relay", argv, port)


def mitmdump_addon(upstream_port: int, out: Path, *sets: str) -> Proxy:
    port = free_port()
    argv = [
        MITMDUMP,
        "--mode",
        f"reverse:tcp://127.0.0.1:{upstream_port}@127.0.0.1:{port}",
        "-s",
        ADDON,
        "--set",
        f"pg_capture={out}",
        "--set",
        "connection_strategy=lazy",
        *(item for s in sets for item in ("--set", s)),
        "-q",
    ]
    return Proxy("mitmdump-addon", argv, port)


def replay_capture(upstream_port: int, out: Path, *extra: str) -> Proxy:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "replay",
        "capture",
        "--upstream",
        f"127.0.0.1:{upstream_port}",
        "--listen",
        f"127.0.0.1:{port}",
        "--out",
        str(out),
        *extra,
    ]
    return Proxy("replay-capture", argv, port)


_CAPTURED = re.compile(
    r"captured (\d+) statements from (\d+) sessions \((\d+) connections, (\d+) not recorded\)"
)


def capture_stats(proxy_output: str) -> dict[str, int] | None:
    """What ``replay capture`` says it recorded when it stops."""
    found = _CAPTURED.search(proxy_output)
    if not found:
        return None
    statements, sessions, connections, not_recorded = map(int, found.groups())
    return {
        "statements": statements,
        "sessions": sessions,
        "connections": connections,
        "not_recorded": not_recorded,
    }


def inspect(capture: Path) -> dict[str, Any]:
    """``replay inspect CAPTURE --json``."""
    proc = subprocess.run(
        [sys.executable, "-m", "replay", "inspect", str(capture), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"replay inspect failed: {proc.stderr.strip()}")
    return dict(json.loads(proc.stdout))


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
    }


def server_version(server: EmbeddedServer) -> str:
    return psql(server.url(), "SHOW server_version")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, columns padded so it also reads well on a terminal."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)
