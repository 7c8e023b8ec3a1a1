"""A ``replay capture`` proxy in a child process, for the demo, the tests and blame.

The proxy runs in its own process, as in production: its event loop never competes
with the caller's, and stopping it is SIGINT, as a user's Ctrl-C.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from replay.errors import SetupError
from replay.targets.server import free_port


def wait_for_port(
    port: int,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
    log: IO[bytes] | None = None,
) -> None:
    """Return once ``host:port`` accepts connections; SetupError if it never does.

    ``log`` is where ``process`` writes its messages, quoted if it exits early.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            err = _read_all(log) if log is not None else ""
            if not err and process.stderr is not None:
                err = process.stderr.read().decode(errors="replace").strip()
            raise SetupError(f"the capture proxy exited: {err.splitlines()[-1] if err else '?'}")
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise SetupError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def _read_all(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace").strip()


class CaptureProcess:
    """``replay capture --upstream UPSTREAM --out OUT`` on a free loopback port."""

    def __init__(self, upstream: str, out: Path, *extra: str) -> None:
        self.upstream = upstream
        self.out = Path(out)
        self.extra = extra
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr: str | None = None
        # The proxy's messages go to a file, not a pipe: a pipe nobody reads while the
        # proxy runs would fill up and stall it, and with it the traffic it forwards.
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (lives with the proxy)

    def start(self) -> CaptureProcess:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "replay", "capture", "--upstream", self.upstream,
             "--listen", f"127.0.0.1:{self.port}", "--out", str(self.out), *self.extra],
            stdout=subprocess.DEVNULL, stderr=self._log,
        )  # fmt: skip
        try:
            wait_for_port(self.port, self.process, log=self._log)
        except BaseException:
            self.process.kill()
            self.process.wait()
            self._log.close()
            raise
        return self

    def url(self, dbname: str, user: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        base = f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"
        return base + (f"?{query}" if query else "")

    def stop(self) -> str:
        """Stop like Ctrl-C does (the capture is flushed); returns the proxy's messages."""
        if self.stderr is None and self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.stderr = _read_all(self._log)
            self._log.close()
        return self.stderr or ""

    def __enter__(self) -> CaptureProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
