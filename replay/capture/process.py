"""A ``replay capture`` proxy in a child process, for the demo, the tests and blame.

The proxy runs in its own process, as in production: its event loop and recorder
thread never compete with the caller's, and stopping it is SIGINT, as a user's Ctrl-C.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from replay.errors import SetupError
from replay.server import free_port


def wait_for_port(
    port: int,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
) -> None:
    """Return once ``host:port`` accepts connections; SetupError if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            err = process.stderr.read().decode().strip() if process.stderr else ""
            raise SetupError(f"the capture proxy exited: {err.splitlines()[-1] if err else '?'}")
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise SetupError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class CaptureProcess:
    """``replay capture --upstream UPSTREAM --out OUT`` on a free loopback port."""

    def __init__(self, upstream: str, out: Path, *extra: str) -> None:
        self.upstream = upstream
        self.out = Path(out)
        self.extra = extra
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.stderr: str | None = None

    def start(self) -> CaptureProcess:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replay",
                "capture",
                "--upstream",
                self.upstream,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--out",
                str(self.out),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port, self.process)
        except BaseException:
            self.process.kill()
            self.process.communicate()
            raise
        return self

    def url(self, dbname: str, user: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        base = f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"
        return base + (f"?{query}" if query else "")

    def stop(self) -> str:
        """Stop like Ctrl-C does (the capture is flushed); returns the proxy's stderr."""
        if self.stderr is None and self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
            try:
                _, err = self.process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                _, err = self.process.communicate()
            self.stderr = err.decode()
        return self.stderr or ""

    def __enter__(self) -> CaptureProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
