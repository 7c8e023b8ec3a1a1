"""SIGTERM and SIGHUP to a running ``replay run`` leave nothing behind (issue 13, point 1).

Real processes and real signals: ``python -m replay run`` in a subprocess, mid-replay,
gets the signal CI cancellations, ``timeout``, systemd and Kubernetes send. Afterwards
no clone database remains on the scratch server, no process the run started is alive,
no server or temporary folder of its own remains, and its ``--out`` folder says the run
was interrupted, so that ``replay report`` refuses to call it safe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import psutil
import psycopg
import pytest
from capture_builder import SessionScript, write_capture
from click.testing import CliRunner

from replay.capture.format import read_records
from replay.capture.process import CaptureProcess
from replay.model.records import Statement

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # mitmproxy's imports, see test_run_cli
    from replay.cli import cli

SCHEMA = "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2);"
STOPPED_WITHIN = 60.0  # seconds from the signal to the exit, cleanup included


def slow_capture(folder: Path, sessions: int = 8, statements: int = 100) -> Path:
    """Sessions of pg_sleep(0.05): a replay of tens of seconds, stopped well before."""
    scripts = []
    for i in range(sessions):
        script = SessionScript(f"s{i}", start=1_700_000_000.0 + i, database="shop")
        for _ in range(statements):
            script.simple("SELECT pg_sleep(0.05)")
        scripts.append(script)
    return write_capture(folder, scripts)


def run_databases(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'replay%'")
        return {r[0] for r in rows}


class ReplayProcess:
    """``python -m replay run ...`` whose stderr is collected line by line as it comes."""

    def __init__(self, *args: str | Path, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "replay", "run", *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                self._reader.join(5)
                assert self.process.stderr is not None
                self.process.stderr.close()
                pytest.fail(f"never said {text!r}: {self.lines}")
            time.sleep(0.05)

    def stop(self, signum: int) -> int:
        """Send ``signum``; the exit code, once it exits (within STOPPED_WITHIN)."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=STOPPED_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"still running {STOPPED_WITHIN:.0f} s after the signal: {self.lines}")
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        self.took = time.monotonic() - sent
        return code


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running a few seconds on (time for an orphan to be reaped)."""
    _, still = psutil.wait_procs(processes, timeout=5)
    return [p for p in still if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def assert_marked_interrupted(out: Path, signame: str) -> None:
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "interrupted"
    assert run["reason"] == f"stopped by {signame}"
    result = CliRunner().invoke(cli, ["report", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {out} holds the partial outcomes of a run that did not finish "
        f"(interrupted, stopped by {signame}); run it again"
    ]
    assert not (out / "report.html").exists()


@pytest.fixture
def source(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return dsn


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_drops_the_clones_stops_the_workers_and_marks_the_folder(
    tmp_path: Path, pg_server, source: str, signum: signal.Signals
) -> None:
    capture = slow_capture(tmp_path / "capture")
    out = tmp_path / "report"
    before = run_databases(pg_server.url)
    (tmp_path / "migrations").mkdir()  # none: a replay with no change
    replay = ReplayProcess(
        "--capture", capture, "--out", out, "--source", source, "--scratch", pg_server.url,
        "--migrations", tmp_path / "migrations", "--no-noise", "--jobs", "4",
    )  # fmt: skip
    replay.wait_for("replaying")
    time.sleep(1.0)  # well into the replay: workers forked, statements in flight
    clones = run_databases(pg_server.url) - before
    assert len(clones) == 2, clones  # baseline and candidate: no migration, nothing to blame
    children = descendants(replay.process.pid)
    assert children, "the replay runs in worker processes"

    code = replay.stop(signum)

    assert code == 128 + signum, replay.lines
    assert replay.lines[-1] == f"Interrupted by {signum.name}."
    assert run_databases(pg_server.url) & clones == set()
    assert alive(children) == []
    assert_marked_interrupted(out, signum.name)


def test_sigterm_without_scratch_stops_the_embedded_server_and_removes_its_folder(
    tmp_path: Path, pg_server, source: str
) -> None:
    capture = slow_capture(tmp_path / "capture")
    out = tmp_path / "report"
    temporary = tmp_path / "tmp"  # the run's own TMPDIR: what it leaves there is its own
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary)}
    (tmp_path / "migrations").mkdir()
    replay = ReplayProcess(
        "--capture", capture, "--out", out, "--source", source, "--no-noise",
        "--migrations", tmp_path / "migrations", env=env,
    )  # fmt: skip
    replay.wait_for("replaying")
    time.sleep(1.0)
    [server_folder] = temporary.glob("replay-pg-*")
    postmasters = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(server_folder) in " ".join(p.info["cmdline"] or ())
    ]
    assert postmasters, "the embedded server runs from its temporary folder"
    server = postmasters + [c for p in postmasters for c in p.children(recursive=True)]
    children = descendants(replay.process.pid)

    code = replay.stop(signal.SIGTERM)

    assert code == 143, replay.lines
    assert alive(server) == []
    assert alive(children) == []
    assert list(temporary.iterdir()) == []
    assert_marked_interrupted(out, "SIGTERM")


def test_report_refuses_a_folder_whose_run_never_finished(tmp_path: Path) -> None:
    """A run killed outright (SIGKILL, a power cut) left run.json saying "running"."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "outcomes.jsonl").write_text("")
    (out / "run.json").write_text(json.dumps({"state": "running", "started": 1.0}))
    result = CliRunner().invoke(cli, ["report", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {out} holds the partial outcomes of a run that did not finish "
        "(still running, or killed); run it again"
    ]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_ends_a_capture_flushed(
    tmp_path: Path, pg_server, signum: signal.Signals
) -> None:
    """``replay capture`` ends on SIGTERM or SIGHUP as on Ctrl-C: the open connection's
    statements are in the capture and the summary is printed, exit 0."""
    proxy = CaptureProcess(f"{pg_server.host}:{pg_server.port}", tmp_path / "capture")
    proxy.start()
    try:
        with psycopg.connect(proxy.url("postgres"), autocommit=True) as conn:
            conn.execute("SELECT 41 + 1")
            assert proxy.process is not None
            proxy.process.send_signal(signum)
            assert proxy.process.wait(timeout=STOPPED_WITHIN) == 0
    finally:
        said = proxy.stop()
    assert "captured 1 statements from 1 sessions" in said
    statements = [r for r in read_records(tmp_path / "capture") if isinstance(r, Statement)]
    assert [s.sql for s in statements] == ["SELECT 41 + 1"]
