"""Cloning targets from a source, dropping them again, and refusing unsafe targets."""

from __future__ import annotations

import psycopg
import pytest

from replay.errors import SetupError, UnsafeTarget
from replay.targets.clone import Clones
from replay.targets.conninfo import Endpoint, strip_password
from replay.targets.safety import check_safe, same_host
from replay.targets.target import Target

SCHEMA = """
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, mood mood);
CREATE VIEW sad_people AS SELECT * FROM people WHERE mood = 'sad';
INSERT INTO people (name, mood) VALUES ('ann', 'ok'), ('bob', 'sad');
"""


def databases(pg_server) -> set[str]:
    with psycopg.connect(pg_server.url) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM people").fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def source(dsn) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return dsn


def test_clones_hold_the_source_and_are_dropped(pg_server, source):
    before = databases(pg_server)
    with Clones(source, scratch=pg_server.url) as clones:
        assert set(clones.targets) == {"baseline", "candidate", "baseline2"}
        for target in clones.targets.values():
            assert target.created and target.name in target.conninfo
            assert count(target.conninfo) == 2
        with psycopg.connect(clones.targets["candidate"].conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM people")
        assert count(clones.targets["baseline"].conninfo) == 2
        # A session left open on a clone must not stop it being dropped.
        lingering = psycopg.connect(clones.targets["baseline2"].conninfo)
    assert databases(pg_server) == before
    assert count(source) == 2
    lingering.close()


def test_the_pristine_template_is_the_source_before_any_change(pg_server, source):
    before = databases(pg_server)
    made = Clones(source, scratch=pg_server.url, pristine=True)
    with pytest.raises(RuntimeError), made as clones:
        assert clones.pristine is not None and clones.pristine not in before
        pristine = psycopg.conninfo.make_conninfo(pg_server.url, dbname=clones.pristine)
        for target in clones.targets.values():
            with psycopg.connect(target.conninfo, autocommit=True) as conn:
                conn.execute("DELETE FROM people")
        assert count(pristine) == 2
        raise RuntimeError("dropped with the clones on every exit")
    assert databases(pg_server) == before
    with Clones(source, scratch=pg_server.url) as clones:
        assert clones.pristine is None
        assert len(databases(pg_server)) == len(before) + 3


def test_schema_only_clones_have_no_rows(pg_server, source):
    with Clones(source, scratch=pg_server.url, schema_only=True, noise=False) as clones:
        assert set(clones.targets) == {"baseline", "candidate"}
        assert count(clones.targets["candidate"].conninfo) == 0


def test_clones_are_dropped_after_an_error_and_on_interrupt(pg_server, source):
    before = databases(pg_server)
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)), Clones(source, scratch=pg_server.url):
            assert len(databases(pg_server)) == len(before) + 3
            raise error
        assert databases(pg_server) == before


def test_keep_keeps_the_clones(pg_server, source):
    with Clones(source, scratch=pg_server.url, noise=False, keep=True) as clones:
        names = {
            psycopg.conninfo.conninfo_to_dict(t.conninfo)["dbname"] for t in clones.targets.values()
        }
    assert names <= databases(pg_server)
    for name in names:
        pg_server.drop_database(name)


def test_an_unreadable_source_is_a_setup_error_and_leaves_nothing(pg_server):
    before = databases(pg_server)
    with (
        pytest.raises(SetupError, match="pg_dump"),
        Clones(pg_server.dsn("no_such_database"), scratch=pg_server.url),
    ):
        pass
    assert databases(pg_server) == before


def test_default_scratch_is_a_throwaway_embedded_server(source):
    with Clones(source, noise=False) as clones:
        server = clones.server
        assert server is not None and server.root is not None
        assert count(clones.targets["candidate"].conninfo) == 2
    assert server.root is None


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("localhost", "127.0.0.1", True),
        ("::1", "localhost", True),
        ("[::1]", "127.0.0.1", True),
        ("/tmp", "127.0.0.1", True),
        ("127.0.0.1", "10.1.2.3", False),
        ("db.example.invalid", "10.1.2.3", False),
    ],
)
def test_same_host(a, b, same):
    assert same_host(a, b) is same


def test_the_capture_source_is_refused_only_for_its_databases():
    upstream = "127.0.0.1:5432"
    prod = Target("candidate", "postgresql://app:secret@localhost:5432/shop")
    with pytest.raises(UnsafeTarget, match="capture's source") as raised:
        check_safe([prod], upstream=upstream, captured_databases={"shop"})
    assert "secret" not in str(raised.value)
    other_db = Target("candidate", "postgresql://localhost:5432/shop_copy")
    other_port = Target("candidate", "postgresql://localhost:5433/shop")
    check_safe([other_db, other_port], upstream=upstream, captured_databases={"shop"})


def test_the_source_database_is_refused_as_a_target():
    source = "host=::1 port=6000 dbname=prod"
    with pytest.raises(UnsafeTarget, match="--source"):
        check_safe(
            [Target("baseline", "postgresql://127.0.0.1:6000/prod")],
            upstream=None,
            captured_databases=(),
            source=source,
        )
    check_safe(
        [Target("baseline", "postgresql://127.0.0.1:6000/other")],
        upstream=None,
        captured_databases=(),
        source=source,
    )


def test_endpoint_defaults_and_passwords_stripped():
    end = Endpoint.of("postgresql://me@db.internal/")
    assert (end.port, end.dbname) == (5432, "me")
    assert "hunter2" not in strip_password("postgresql://me:hunter2@db/x")
