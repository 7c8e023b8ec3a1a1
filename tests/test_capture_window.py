"""Operators end a capture window without restarting the proxy, and see why clients fail.

SIGUSR1 closes the capture and keeps relaying: an application's open connections and its
new ones go on working, unrecorded. A client refused because the upstream is down is
also said on the proxy's own stderr, not only to that client.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest
from conftest import PgServer, start_capture

from replay.capture.format import read_records
from replay.model.records import SessionEnd, Statement
from replay.targets.server import free_port

pytestmark = pytest.mark.slow


def _statements(folder: Path) -> list[str]:
    return [r.sql for r in read_records(folder) if isinstance(r, Statement)]


def test_sigusr1_closes_the_capture_and_keeps_every_connection_relayed(
    pg_server: PgServer, dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "capture"
    proxy = start_capture(f"{pg_server.host}:{pg_server.port}", out)
    try:
        dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(proxy.url(str(dbname)), autocommit=True) as open_before:
            assert open_before.execute("SELECT 'recorded'").fetchone() == ("recorded",)
            assert proxy.process is not None
            proxy.process.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "recording stopped" not in _messages(proxy):
                time.sleep(0.05)
            assert "recording stopped" in _messages(proxy)
            closed = _statements(out)
            # The open connection goes on, and so does a new one.
            assert open_before.execute("SELECT 'after, same connection'").fetchone()
            with psycopg.connect(proxy.url(str(dbname)), autocommit=True) as opened_after:
                assert opened_after.execute("SELECT 'after, new connection'").fetchone()
    finally:
        messages = proxy.stop()
    assert proxy.process is not None and proxy.process.returncode == 0, messages
    assert "SELECT 'recorded'" in closed
    assert _statements(out) == closed  # nothing recorded after the window closed
    # The connection open across the window's end was recorded up to it, not "fell behind".
    ends = [r for r in read_records(out) if isinstance(r, SessionEnd)]
    assert ends and all(end.recorded for end in ends), ends


def _messages(proxy: object) -> str:
    log = proxy._log  # type: ignore[attr-defined]
    log.seek(0)
    return log.read().decode(errors="replace")


def test_a_client_refused_for_a_down_upstream_is_logged_by_the_proxy(tmp_path: Path) -> None:
    proxy = start_capture(f"127.0.0.1:{free_port()}", tmp_path / "capture")
    try:
        with pytest.raises(psycopg.OperationalError, match="cannot reach"):
            psycopg.connect(proxy.url("app"), connect_timeout=10)
    finally:
        messages = proxy.stop()
    assert "cannot reach the upstream 127.0.0.1:" in messages


def test_the_proxy_and_inspect_count_the_same_sessions(
    pg_server: PgServer, dsn: str, tmp_path: Path
) -> None:
    """Connections that run no statement (health checks, a pool's spare connections) are
    not sessions to inspect: the proxy's closing line must not count them either."""
    from replay.capture.summary import inspect_capture

    out = tmp_path / "capture"
    proxy = start_capture(f"{pg_server.host}:{pg_server.port}", out)
    dbname = str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
    try:
        for i in range(3):
            with psycopg.connect(proxy.url(dbname), autocommit=True) as conn:
                conn.execute("SELECT %s::int", [i])
        for _ in range(2):
            psycopg.connect(proxy.url(dbname)).close()  # connects, runs nothing
    finally:
        messages = proxy.stop()
    assert inspect_capture(out).sessions == 3
    assert "from 3 sessions" in messages, messages
