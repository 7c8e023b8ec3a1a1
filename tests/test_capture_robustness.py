"""The capture proxy never breaks, changes or holds on to the application's traffic."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from conftest import CaptureProxy, PgServer, start_capture

from replay.capture.process import wait_for_port
from replay.model.records import Session, SessionEnd, Statement
from replay.targets.server import EmbeddedServer, free_port, tool


class RecordingUpstream:
    """A TCP server that is not PostgreSQL: it keeps what it gets and sends noise back."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.received = bytearray()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            sender = threading.Thread(target=conn.sendall, args=(self.reply,))
            sender.start()
            while chunk := conn.recv(65536):
                self.received += chunk
            sender.join()
            conn.shutdown(socket.SHUT_WR)
        self.sock.close()


def exchange(port: int, payload: bytes, rng: random.Random) -> bytes:
    """Send ``payload`` in random chunks, half-close, and read everything back."""
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = threading.Thread(target=lambda: _read_all(sock, got))
        reader.start()
        view = memoryview(payload)
        while view:
            size = rng.randint(1, 5000)
            sock.sendall(view[:size])
            view = view[size:]
        sock.shutdown(socket.SHUT_WR)
        reader.join(timeout=30)
    return bytes(got)


def _read_all(sock: socket.socket, into: bytearray) -> None:
    while chunk := sock.recv(65536):
        into += chunk


def startup_message(**params: str) -> bytes:
    body = struct.pack("!I", 196608)
    for key, value in params.items():
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["noise", "postgres-then-noise"])
def test_every_byte_passes_unchanged_both_ways(tmp_path: Path, kind: str) -> None:
    rng = random.Random(7)
    reply = rng.randbytes(300_000)
    payload = rng.randbytes(300_000)
    if kind == "postgres-then-noise":
        # A real startup, then nonsense (an absurd message length): the decoder gives up
        # on this connection, the relay must not.
        payload = startup_message(user="app", database="db") + b"Q\xff\xff\xff\xf0" + payload
    upstream = RecordingUpstream(reply)
    proxy = start_capture(f"127.0.0.1:{upstream.port}", tmp_path / "cap")
    try:
        got = exchange(proxy.port, payload, rng)
        upstream.thread.join(timeout=30)
    finally:
        proxy.stop()
    assert bytes(upstream.received) == payload
    assert got == reply
    ends = [r for r in proxy.records() if isinstance(r, SessionEnd)]
    assert len(ends) == 1 and not ends[0].recorded and ends[0].reason


@pytest.mark.slow
def test_upstream_restart_never_stops_the_proxy(tmp_path: Path) -> None:
    server = EmbeddedServer().start()
    proxy = start_capture(f"127.0.0.1:{server.port}", tmp_path / "cap")
    try:
        url = proxy.url("postgres")
        before = psycopg.connect(url, autocommit=True)
        before.execute("select 1")
        server.pg_ctl("stop")
        # The open connection gets the server's own goodbye...
        with pytest.raises(psycopg.OperationalError):
            before.execute("select 1")
        before.close()
        # ...a new one, while the server is down, a clear error from the proxy...
        with pytest.raises(psycopg.OperationalError, match="capture proxy: cannot reach"):
            psycopg.connect(url, connect_timeout=5)
        server.pg_ctl("start")
        # ...and once it is back, new connections work through the same proxy.
        with psycopg.connect(url) as after:
            assert after.execute("select 2").fetchone() == (2,)
        assert proxy.process.poll() is None
    finally:
        proxy.stop()
        server.stop()
    sqls = [r.sql for r in proxy.records() if isinstance(r, Statement)]
    assert sqls.count("select 1") == 1 and "select 2" in sqls


SECRETS = (
    "Scram-Secret-1",
    "Md5-Secret-2",
    "Plain-Secret-3",
    "Altered-Secret-4",
    "Mapping-Secret-5",
)


@pytest.mark.slow
def test_secrets_never_reach_the_capture(tmp_path: Path) -> None:
    hba = (
        "\n".join(
            [
                "local all all trust",
                "host all u_scram 127.0.0.1/32 scram-sha-256",
                "host all u_md5 127.0.0.1/32 md5",
                "host all u_plain 127.0.0.1/32 password",
                "host all all 127.0.0.1/32 trust",
            ]
        )
        + "\n"
    )
    server = EmbeddedServer(hba=hba).start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f"create role u_scram login password '{SECRETS[0]}'")
            admin.execute("set password_encryption = 'md5'")
            admin.execute(f"create role u_md5 login password '{SECRETS[1]}'")
            admin.execute(f"create role u_plain login password '{SECRETS[2]}'")
        proxy = start_capture(f"127.0.0.1:{server.port}", tmp_path / "cap")
        try:
            for user, secret in zip(("u_scram", "u_md5", "u_plain"), SECRETS, strict=False):
                with psycopg.connect(proxy.url("postgres", user=user), password=secret) as c:
                    assert c.execute("select current_user").fetchone() == (user,)
            with psycopg.connect(proxy.url("postgres"), autocommit=True) as admin:
                admin.execute(f"alter role u_plain with encrypted password '{SECRETS[3]}'")
                admin.execute("create extension if not exists postgres_fdw")
                admin.execute("create server s1 foreign data wrapper postgres_fdw")
                admin.execute(
                    f"create user mapping for u_plain server s1 options "
                    f"(user 'x', password '{SECRETS[4]}')"
                )
        finally:
            proxy.stop()
    finally:
        server.stop()
    text = b"".join(p.read_bytes() for p in (tmp_path / "cap").iterdir())
    for secret in SECRETS:
        assert secret.encode() not in text
    statements = [r for r in proxy.records() if isinstance(r, Statement)]
    altered = next(s for s in statements if s.sql.startswith("alter role"))
    assert "'***'" in altered.sql and not altered.replayable
    assert len([r for r in proxy.records() if isinstance(r, Session)]) == 4


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def recorded_lines(folder: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in folder.iterdir())


def settled_rss(proxy: CaptureProxy, lines: int) -> int:
    """The proxy's RSS once the recorder has written ``lines`` lines (caught up)."""
    deadline = time.monotonic() + 120
    while recorded_lines(proxy.out) < lines and time.monotonic() < deadline:
        time.sleep(0.2)
    return rss_kib(proxy.process.pid)


def test_memory_stays_flat_over_200k_statements_on_one_connection(
    capture_proxy: CaptureProxy, pg_server: PgServer
) -> None:
    db = pg_server.create_database()
    batch = "select 1, 'x';" * 500
    header_and_session = 2
    with psycopg.connect(capture_proxy.url(db), autocommit=True) as conn:
        # The client can outrun the recorder thread for a while: its backlog (bounded
        # in bytes) sets the high-water mark. Reach it in the first half, then check
        # that the second half adds nothing.
        for _ in range(200):
            conn.execute(batch)
        half = settled_rss(capture_proxy, header_and_session + 100_000)
        for _ in range(200):
            conn.execute(batch)
        full = settled_rss(capture_proxy, header_and_session + 200_000)
    capture_proxy.stop()
    recorded = sum(1 for r in capture_proxy.records() if isinstance(r, Statement))
    assert recorded == 200_000
    assert full - half < 4 * 1024, f"proxy grew from {half} KiB to {full} KiB"


def test_addon_works_in_plain_mitmdump(pg_server: PgServer, tmp_path: Path) -> None:
    import replay.capture.addon as addon

    port = free_port()
    mitmdump = Path(sys.executable).parent / "mitmdump"
    proxy = CaptureProxy(f"{pg_server.host}:{pg_server.port}", tmp_path / "cap")
    process = subprocess.Popen(
        [
            str(mitmdump),
            "-q",
            "--mode",
            f"reverse:tcp://{pg_server.host}:{pg_server.port}@127.0.0.1:{port}",
            "-s",
            addon.__file__,
            "--set",
            f"pg_capture={tmp_path / 'cap'}",
            "--set",
            "connection_strategy=lazy",
        ],
        stdout=subprocess.DEVNULL,
        stderr=proxy._log,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    proxy.port, proxy.process = port, process
    try:
        wait_for_port(port, process)
        db = pg_server.create_database()
        result = subprocess.run(
            [tool("psql"), "-X", proxy.url(db), "-c", "select 7"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    finally:
        proxy.stop()
    assert [r.sql for r in proxy.records() if isinstance(r, Statement)] == ["select 7"]
