"""Real clients through the real capture proxy, with exact expected records."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import psycopg
import pytest
from conftest import CaptureProxy, PgServer, start_capture

from replay.model.records import Session, SessionEnd, Statement
from replay.targets.server import tool


def statements(proxy: CaptureProxy) -> list[Statement]:
    proxy.stop()
    return [r for r in proxy.records() if isinstance(r, Statement)]


def psql(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("psql"), "-X", "-v", "ON_ERROR_STOP=0", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def db(pg_server: PgServer) -> str:
    name = pg_server.create_database()
    return name


def test_psql_simple_multi_statement_and_error(capture_proxy: CaptureProxy, db: str) -> None:
    result = psql(
        capture_proxy.url(db),
        "-c",
        "select 1 as a; select 2; select 1/0; select 3",
        "-c",
        "create table t (id int)",
        "-c",
        "insert into t values (1), (2)",
        "-c",
        ";",
    )
    assert result.returncode == 0, result.stderr
    assert "division by zero" in result.stderr

    capture_proxy.stop()
    records = capture_proxy.records()
    sessions = [r for r in records if isinstance(r, Session)]
    assert len(sessions) == 1
    assert sessions[0].user == "postgres" and sessions[0].database == db
    assert sessions[0].application_name == "psql"
    got = [r for r in records if isinstance(r, Statement)]
    # "select 3" never ran: the server stops a Query string at its first error.
    assert [s.sql for s in got] == [
        "select 1 as a",
        "select 2",
        "select 1/0",
        "create table t (id int)",
        "insert into t values (1), (2)",
        ";",
    ]
    first, second, failed, create, insert, empty = got
    assert first.batch == "select 1 as a; select 2; select 1/0; select 3"
    assert (first.batch_index, second.batch_index, failed.batch_index) == (0, 1, 2)
    assert first.tag == "SELECT 1" and first.rows == 1 and first.columns == [("a", 23)]
    assert failed.error is not None and failed.error.sqlstate == "22012"
    assert create.tag == "CREATE TABLE" and insert.tag == "INSERT 0 2" and insert.rows == 2
    assert empty.tag is None and empty.error is None
    assert [s.seq for s in got] == [1, 2, 3, 4, 5, 6]
    end = [r for r in records if isinstance(r, SessionEnd)]
    assert len(end) == 1 and end[0].recorded


def test_psycopg_text_and_binary_parameters(capture_proxy: CaptureProxy, db: str) -> None:
    with psycopg.connect(capture_proxy.url(db), autocommit=True) as conn:
        conn.execute("select %s::int4 + %s::int4", [1, 2])
        conn.execute("select %t || %t", ["a", "b"])
        conn.execute("select %b::bytea", [b"\x00\xff"], binary=True)
    got = statements(capture_proxy)
    assert len(got) == 3
    add, concat, raw = got
    assert add.protocol == "extended" and add.param_formats == [1, 1]
    assert add.param_types == [21, 21]  # psycopg dumps small ints as int2, binary
    assert add.param_bytes() == [b"\x00\x01", b"\x00\x02"]
    assert concat.param_formats in ([], [0], [0, 0]) and concat.param_bytes() == [b"a", b"b"]
    assert raw.param_bytes() == [b"\x00\xff"] and raw.result_formats == [1]
    assert add.digest is not None and add.rows == 1


def test_psycopg_prepared_statements(capture_proxy: CaptureProxy, db: str) -> None:
    with psycopg.connect(capture_proxy.url(db), autocommit=True, prepare_threshold=2) as conn:
        for i in range(4):
            conn.execute("select %s::int * 2", [i])  # prepared automatically from the 3rd
        conn.execute("select %s::int + 1", [5], prepare=True)
    got = statements(capture_proxy)
    assert len(got) == 5
    assert {s.sql for s in got[:4]} == {"select $1::int * 2"}
    assert got[0].statement_name == "" and got[1].statement_name == ""
    assert (
        got[2].statement_name.startswith("_pg3_") and got[3].statement_name == got[2].statement_name
    )
    assert got[4].statement_name.startswith("_pg3_") and got[4].sql == "select $1::int + 1"


def test_pipeline_with_an_error_in_the_middle(capture_proxy: CaptureProxy, db: str) -> None:
    with psycopg.connect(capture_proxy.url(db), autocommit=True) as conn:
        conn.execute("create table p (id int primary key)")
        with pytest.raises(psycopg.errors.UniqueViolation), conn.pipeline():
            conn.execute("insert into p values (%s)", [1])
            conn.execute("insert into p values (%s)", [1])  # fails
            conn.execute("insert into p values (%s)", [2])  # skipped by the server
    got = statements(capture_proxy)
    assert [s.sql for s in got] == [
        "create table p (id int primary key)",
        "insert into p values ($1)",
        "insert into p values ($1)",
    ]
    assert got[1].tag == "INSERT 0 1"
    assert got[2].error is not None and got[2].error.sqlstate == "23505"


def test_executemany_copy_and_server_side_cursor(capture_proxy: CaptureProxy, db: str) -> None:
    with psycopg.connect(capture_proxy.url(db), autocommit=True) as conn:
        conn.execute("create table c (id int, name text)")
        with conn.cursor() as cur:
            cur.executemany("insert into c values (%s, %s)", [(i, f"n{i}") for i in range(5)])
            with cur.copy("copy c from stdin") as copy:
                for i in range(5, 8):
                    copy.write_row((i, f"n{i}"))
            with cur.copy("copy c to stdout") as copy:
                copied = list(copy)
        assert len(copied) >= 1
        with conn.transaction(), conn.cursor(name="walker") as named:
            named.itersize = 3
            named.execute("select id from c order by id")
            assert [r[0] for r in named] == list(range(8))
    got = statements(capture_proxy)
    inserts = [s for s in got if s.sql.startswith("insert into c")]
    assert len(inserts) == 5 and all(s.tag == "INSERT 0 1" for s in inserts)
    copy_in = next(s for s in got if s.sql == "copy c from stdin")
    assert copy_in.tag == "COPY 3" and copy_in.copy_bytes() == b"5\tn5\n6\tn6\n7\tn7\n"
    copy_out = next(s for s in got if s.sql == "copy c to stdout")
    assert copy_out.tag == "COPY 8" and copy_out.rows == 8 and copy_out.digest is not None
    fetches = [s for s in got if s.sql.lower().startswith("fetch")]
    # 8 rows fetched 3 at a time: 3, 3, 2 and an empty fetch that ends the loop... or not:
    # psycopg stops when a fetch returns fewer rows than asked.
    assert [s.rows for s in fetches] == [3, 3, 2]
    assert any(s.sql.lower().startswith("declare") for s in got)


def test_cancel_is_recorded_without_its_key(capture_proxy: CaptureProxy, db: str) -> None:
    with psycopg.connect(capture_proxy.url(db), autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(5)")
        timer.join()
    capture_proxy.stop()
    records = capture_proxy.records()
    sleep = next(r for r in records if isinstance(r, Statement) and "pg_sleep" in r.sql)
    assert sleep.error is not None and sleep.error.sqlstate == "57014"
    ends = [r for r in records if isinstance(r, SessionEnd)]
    assert any(e.reason == "cancel request" and not e.recorded for e in ends)
    sessions = [r for r in records if isinstance(r, Session)]
    assert len(sessions) == 1  # the cancel connection is not a session


def test_sslmode_prefer_works_and_require_fails_clearly(
    capture_proxy: CaptureProxy, db: str
) -> None:
    with psycopg.connect(capture_proxy.url(db, sslmode="prefer"), autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use is False
        conn.execute("select 42")
    with pytest.raises(psycopg.OperationalError, match="server does not support SSL"):
        psycopg.connect(capture_proxy.url(db, sslmode="require"))
    assert [s.sql for s in statements(capture_proxy)] == ["select 42"]


PGBENCH_TPCB = 7  # BEGIN, 3 UPDATEs, SELECT, INSERT, END per transaction
TPCB_STATEMENT = re.compile(
    r"^\s*(BEGIN|END|UPDATE pgbench_(accounts|tellers|branches) SET|"
    r"SELECT abalance FROM|INSERT INTO pgbench_history)",
    re.IGNORECASE,
)


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_modes_give_exactly_the_statements_sent(
    capture_proxy: CaptureProxy, pg_server: PgServer, db: str, mode: str
) -> None:
    init = subprocess.run(
        [tool("pgbench"), "-i", "-s", "1", "-q", pg_server.dsn(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    transactions, clients = 20, 2
    run = subprocess.run(
        [
            tool("pgbench"),
            "-n",
            "-M",
            mode,
            "-c",
            str(clients),
            "-t",
            str(transactions),
            capture_proxy.url(db),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    tx_statements = [s for s in statements(capture_proxy) if TPCB_STATEMENT.match(s.sql)]
    assert len(tx_statements) == PGBENCH_TPCB * transactions * clients
    assert all(s.error is None for s in tx_statements)
    protocols = {s.protocol for s in tx_statements}
    assert protocols == ({"simple"} if mode == "simple" else {"extended"})
    named = {s.statement_name for s in tx_statements}
    assert (named != {""}) == (mode == "prepared")
    selects = [s for s in tx_statements if s.sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) == transactions * clients and all(s.rows == 1 for s in selects)


def test_sampling_records_a_fraction(pg_server: PgServer, tmp_path, db: str) -> None:
    proxy = start_capture(f"{pg_server.host}:{pg_server.port}", tmp_path / "cap", "--sample", "0.5")
    try:
        for _ in range(24):
            with psycopg.connect(proxy.url(db)) as conn:
                conn.execute("select 1")
    finally:
        proxy.stop()
    sessions = [r for r in proxy.records() if isinstance(r, Session)]
    # Every connection worked; about half were recorded (all or none: p < 1e-7).
    assert 0 < len(sessions) < 24


def test_capture_folder_is_owner_only(capture_proxy: CaptureProxy, db: str) -> None:
    with psycopg.connect(capture_proxy.url(db)) as conn:
        conn.execute("select 1")
    capture_proxy.stop()
    assert capture_proxy.out.stat().st_mode & 0o777 == 0o700
    for segment in capture_proxy.out.iterdir():
        assert segment.stat().st_mode & 0o777 == 0o600


def test_records_arrive_while_the_proxy_runs(capture_proxy: CaptureProxy, db: str) -> None:
    with psycopg.connect(capture_proxy.url(db)) as conn:
        conn.execute("select 1")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(isinstance(r, Statement) for r in capture_proxy.records()):
            break
        time.sleep(0.05)
    else:
        pytest.fail("no statement was flushed to the capture while the proxy ran")
