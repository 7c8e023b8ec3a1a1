"""The tracker against bytes a real PostgreSQL and libpq (via psycopg) exchanged.

A tiny TCP relay in a thread copies bytes between psycopg and the test server and
feeds each chunk to a ConnectionTracker, as the capture addon would; the records must
describe what the client did. This guards the assumptions the unit tests encode by hand
(pipelined Sync during COPY, skipped messages after an error, 3.2 key lengths).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from replay.model.records import Record, SessionEnd, Statement
from replay.wire.tracker import ConnectionTracker

pytestmark = pytest.mark.slow


class Relay:
    """Accept one connection, relay it to the server, feed a tracker."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.tracker = ConnectionTracker("s1", "127.0.0.1", time.time())
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(self.upstream)
        pumps = [
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True),
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        client.close()
        server.close()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            # Track before forwarding, so requests are always seen before answers.
            with self.lock:
                feed = self.tracker.client_data if from_client else self.tracker.server_data
                feed(data, time.time())
            sink.sendall(data)

    def records(self) -> list[Record]:
        self.thread.join(timeout=10)
        self.listener.close()
        with self.lock:
            return self.tracker.pop_records() + self.tracker.close(time.time())


@pytest.fixture
def relay(pg_server: Any, dsn: str) -> Iterator[tuple[Relay, str]]:
    relay = Relay(pg_server.host, pg_server.port)
    yield (
        relay,
        psycopg.conninfo.make_conninfo(
            dsn, host="127.0.0.1", port=relay.port, sslmode="disable", gssencmode="disable"
        ),
    )


def test_real_exchange(relay: tuple[Relay, str]) -> None:
    proxy, conninfo = relay
    with psycopg.connect(conninfo, application_name="wire-test") as conn:
        conn.execute("create table t (id int primary key, name text)")
        conn.execute("insert into t values (%s, %s), (%s, %s)", (1, "a", 2, "b"))
        conn.execute("select id, name from t order by id").fetchall()
        conn.execute("select 1; select 2", prepare=False)
        with conn.cursor() as cur, cur.copy("copy t from stdin") as copy:
            copy.write_row((3, "c"))
        with conn.cursor() as cur, cur.copy("copy t to stdout") as copy:
            list(copy)
        conn.commit()
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("select 1/0")
        conn.rollback()
        with conn.pipeline():
            conn.execute("insert into t values (%s, 'x')", (10,))
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute("insert into t values (%s, 'y')", (10,))
                conn.execute("insert into t values (%s, 'z')", (11,))  # skipped
                conn.commit()
        conn.rollback()
        conn.execute("ALTER ROLE CURRENT_USER PASSWORD 'real-secret'")
        conn.rollback()
    records = proxy.records()
    assert not proxy.tracker.desynchronized, proxy.tracker.reason
    stmts = [r for r in records if isinstance(r, Statement)]
    by_sql = {s.sql: s for s in stmts}
    assert by_sql["select id, name from t order by id"].rows == 2
    assert by_sql["select id, name from t order by id"].columns == [("id", 23), ("name", 25)]
    assert by_sql["copy t from stdin"].copy_bytes() == b"3\tc\n"
    assert by_sql["copy t to stdout"].rows == 3
    assert by_sql["select 1/0"].error is not None
    assert [s.sql for s in stmts if s.batch] == ["select 1", "select 2"]
    pipelined = [s for s in stmts if s.sql.startswith("insert into t values ($1, '")]
    assert [s.error.sqlstate if s.error else None for s in pipelined] == [None, "23505"]
    assert "real-secret" not in repr([r.to_json() for r in records])
    end = records[-1]
    assert isinstance(end, SessionEnd) and end.recorded and end.statements == len(stmts)


def test_protocol_32_request(relay: tuple[Relay, str]) -> None:
    """libpq 18 can ask for protocol 3.2 (longer cancel keys); a server older than 18
    answers NegotiateProtocolVersion and the session is 3.0."""
    if psycopg.pq.version() < 180000:
        pytest.skip("libpq older than 18 cannot request protocol 3.2")
    proxy, conninfo = relay
    with psycopg.connect(conninfo + " max_protocol_version=3.2") as conn:
        server_version = conn.info.server_version
        conn.execute("select 1")
    records = proxy.records()
    assert not proxy.tracker.desynchronized, proxy.tracker.reason
    session = records[0]
    assert getattr(session, "protocol", None) == ("3.2" if server_version >= 180000 else "3.0")
    assert any(isinstance(r, Statement) and r.sql == "select 1" for r in records)
