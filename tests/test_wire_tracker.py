"""ConnectionTracker: from the two byte streams of a connection to capture records."""

from __future__ import annotations

import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from replay.model.records import ErrorInfo, Record, Session, SessionEnd, Statement
from replay.wire import build as b
from replay.wire.digest import RowDigest
from replay.wire.tracker import ConnectionTracker

STARTUP = b.startup({"user": "app", "application_name": "web", "DateStyle": "ISO"})
HELLO = b.auth(0) + b.parameter_status("server_version", "17.0") + b.backend_key_data(1, b"k" * 4)


def connect(**kwargs: object) -> ConnectionTracker:
    tracker = ConnectionTracker("s1", "10.0.0.1:5555", 100.0, **kwargs)  # type: ignore[arg-type]
    tracker.client_data(STARTUP, 100.0)
    tracker.server_data(HELLO + b.ready("I"), 100.1)
    return tracker


def exchange(tracker: ConnectionTracker, client: bytes, server: bytes, ts: float = 1.0) -> None:
    tracker.client_data(client, ts)
    tracker.server_data(server, ts + 0.5)


def statements(records: list[Record]) -> list[Statement]:
    return [r for r in records if isinstance(r, Statement)]


def digest_of(*rows: list[bytes | None]) -> RowDigest:
    digest = RowDigest()
    for row in rows:
        digest.add_values(row)
    return digest


def test_session_from_startup() -> None:
    tracker = connect()
    records = tracker.pop_records()
    assert records == [
        Session(
            id="s1",
            start=100.0,
            client="10.0.0.1:5555",
            user="app",
            database="app",  # defaults to the user
            application_name="web",
            parameters={"user": "app", "application_name": "web", "DateStyle": "ISO"},
            protocol="3.0",
        )
    ]
    end = tracker.close(200.0)
    assert end == [SessionEnd("s1", 200.0, 0, True, "")]


def test_ssl_refused_then_startup_protocol_32() -> None:
    tracker = ConnectionTracker("s", "c", 0.0)
    tracker.client_data(b.ssl_request(), 0.0)
    tracker.server_data(b"N", 0.0)
    tracker.client_data(b.startup({"user": "u", "database": "d"}, minor=2), 0.0)
    tracker.server_data(b.auth(0) + b.backend_key_data(9, bytes(32)) + b.ready(), 0.0)
    (session,) = tracker.pop_records()
    assert isinstance(session, Session)
    assert (session.protocol, session.database) == ("3.2", "d")
    assert not tracker.desynchronized


def test_negotiated_protocol_downgrade() -> None:
    tracker = ConnectionTracker("s", "c", 0.0)
    tracker.client_data(b.startup({"user": "u"}, minor=2), 0.0)
    tracker.server_data(b.negotiate_protocol(0) + b.auth(0) + b.ready(), 0.0)
    (session,) = tracker.pop_records()
    assert isinstance(session, Session) and session.protocol == "3.0"


def test_ssl_accepted_is_not_recorded() -> None:
    tracker = ConnectionTracker("s", "c", 0.0)
    tracker.client_data(b.ssl_request(), 0.0)
    tracker.server_data(b"S", 0.0)
    tracker.client_data(b"\x16\x03\x01\x02\x00", 0.0)
    assert tracker.desynchronized
    (end,) = tracker.close(1.0)
    assert isinstance(end, SessionEnd) and not end.recorded and "TLS" in end.reason


def test_cancel_request_records_no_key() -> None:
    tracker = ConnectionTracker("s", "c", 0.0)
    tracker.client_data(b.cancel_request(4242, b"\x13\x37\xbe\xef"), 0.0)
    records = tracker.close(1.0)
    assert records == [SessionEnd("s", 1.0, 0, False, "cancel request")]
    assert "4242" not in json.dumps([r.to_json() for r in records])


def test_not_postgres() -> None:
    tracker = ConnectionTracker("s", "c", 0.0)
    tracker.client_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    assert tracker.desynchronized
    (end,) = tracker.close(1.0)
    assert isinstance(end, SessionEnd) and not end.recorded and end.reason


def test_simple_query_with_rows() -> None:
    tracker = connect()
    tracker.pop_records()
    server = (
        b.row_description([("id", 23), ("name", 25)])
        + b.data_row([b"1", b"a"])
        + b.data_row([b"2", None])
        + b.command_complete("SELECT 2")
    )
    tracker.client_data(b.query("select id, name from t"), 10.0)
    tracker.server_data(server, 10.25)
    assert tracker.pop_records() == []  # held until ReadyForQuery
    tracker.server_data(b.ready("I"), 10.3)
    (stmt,) = tracker.pop_records()
    assert isinstance(stmt, Statement)
    expected = digest_of([b"1", b"a"], [b"2", None])
    assert (stmt.seq, stmt.sql, stmt.protocol, stmt.batch) == (
        1,
        "select id, name from t",
        "simple",
        None,
    )
    assert (stmt.tag, stmt.rows, stmt.columns) == ("SELECT 2", 2, [("id", 23), ("name", 25)])
    assert (stmt.digest, stmt.digest_unordered) == (expected.ordered, expected.unordered)
    assert (stmt.start, stmt.duration, stmt.tx_status) == (10.0, 0.25, "I")


def test_digest_rows_off() -> None:
    tracker = connect(digest_rows=False)
    exchange(
        tracker,
        b.query("select 1"),
        b.row_description([("x", 23)])
        + b.data_row([b"1"])
        + b.command_complete("SELECT 1")
        + b.ready(),
    )
    (stmt,) = statements(tracker.pop_records())
    assert stmt.digest is None and stmt.rows == 1


def test_multi_statement_query_stops_at_error() -> None:
    tracker = connect()
    sql = "BEGIN; insert into t values (1); select 1/0; update t set x = 2; COMMIT"
    server = (
        b.command_complete("BEGIN")
        + b.command_complete("INSERT 0 1")
        + b.error("22012", "division by zero")
        + b.ready("E")
    )
    exchange(tracker, b.query(sql), server)
    stmts = statements(tracker.pop_records())
    assert [(s.sql, s.batch_index, s.tag, s.rows) for s in stmts] == [
        ("BEGIN", 0, "BEGIN", None),
        ("insert into t values (1)", 1, "INSERT 0 1", 1),
        ("select 1/0", 2, None, None),
    ]
    assert all(s.batch == sql and s.tx_status == "E" for s in stmts)
    assert stmts[2].error == ErrorInfo("22012", "division by zero", "ERROR")
    assert [s.seq for s in stmts] == [1, 2, 3]


def test_syntax_error_blames_the_statement_at_its_position() -> None:
    tracker = connect()
    sql = "select 1; selec 2"
    exchange(tracker, b.query(sql), b.error("42601", "syntax error", position=11) + b.ready())
    (stmt,) = statements(tracker.pop_records())
    assert (stmt.sql, stmt.batch_index, stmt.batch) == ("selec 2", 1, sql)


def test_empty_query() -> None:
    tracker = connect()
    exchange(tracker, b.query(""), b.empty_query() + b.ready())
    exchange(tracker, b.query(" ; "), b.empty_query() + b.ready())
    stmts = statements(tracker.pop_records())
    assert [(s.sql, s.tag, s.note) for s in stmts] == [
        ("", None, "empty query"),
        (" ; ", None, "empty query"),
    ]


def extended(
    sql: str, params: list[bytes | None], name: str = "", types: tuple[int, ...] = ()
) -> bytes:
    return (
        b.parse(sql, name, types) + b.bind(params, statement=name) + b.describe("P") + b.execute()
    )


EXT_OK = b.parse_complete() + b.bind_complete()


def test_extended_query() -> None:
    tracker = connect()
    client = (
        b.parse("select $1::int, $2::text", "", (23, 25))
        + b.bind([b"\x00\x00\x00\x07", b"x"], formats=[1, 0], result_formats=[1])
        + b.describe("P")
        + b.execute()
        + b.sync()
    )
    server = EXT_OK + b.row_description([("int4", 23), ("text", 25)]) + b.data_row([b"7", b"x"])
    exchange(tracker, client, server + b.command_complete("SELECT 1") + b.ready("I"))
    (stmt,) = statements(tracker.pop_records())
    assert stmt.protocol == "extended" and stmt.sql == "select $1::int, $2::text"
    assert (stmt.param_types, stmt.param_formats, stmt.result_formats) == ([23, 25], [1, 0], [1])
    assert stmt.param_bytes() == [b"\x00\x00\x00\x07", b"x"]
    assert stmt.columns == [("int4", 23), ("text", 25)] and stmt.rows == 1 and stmt.tx_status == "I"


def test_pipeline_error_skips_until_sync() -> None:
    tracker = connect()
    client = (
        extended("insert into t values ($1)", [b"1"])
        + extended("insert into t values ($1)", [b"oops"])
        + extended("insert into t values ($1)", [b"3"])  # skipped by the server
        + b.sync()
        + extended("select 4", [])
        + b.sync()
    )
    server = (
        EXT_OK
        + b.no_data()
        + b.command_complete("INSERT 0 1")
        + EXT_OK
        + b.no_data()
        + b.error("22P02", "invalid input syntax for type integer")
        + b.ready("I")
        + EXT_OK
        + b.row_description([("?column?", 23)])
        + b.data_row([b"4"])
        + b.command_complete("SELECT 1")
        + b.ready("I")
    )
    exchange(tracker, client, server)
    stmts = statements(tracker.pop_records())
    assert [(s.seq, s.params, s.tag, s.error and s.error.sqlstate) for s in stmts] == [
        (1, ["1"], "INSERT 0 1", None),
        (2, ["oops"], None, "22P02"),
        (3, [], "SELECT 1", None),
    ]
    assert not tracker.desynchronized


def test_parse_error_is_a_failed_statement() -> None:
    tracker = connect()
    client = extended("selec 1", []) + b.sync()
    exchange(tracker, client, b.error("42601", 'syntax error at or near "selec"') + b.ready())
    (stmt,) = statements(tracker.pop_records())
    assert stmt.sql == "selec 1" and stmt.error is not None and stmt.error.sqlstate == "42601"
    assert stmt.protocol == "extended"


def test_bind_error_is_a_failed_statement() -> None:
    tracker = connect()
    client = (
        b.parse("select $1::int", "s", (23,))
        + b.bind([b"x"], statement="s")
        + b.execute()
        + b.sync()
    )
    exchange(tracker, client, b.parse_complete() + b.error("22P02", "bad int") + b.ready())
    (stmt,) = statements(tracker.pop_records())
    assert (stmt.sql, stmt.params, stmt.statement_name) == ("select $1::int", ["x"], "s")
    assert stmt.error is not None and stmt.error.sqlstate == "22P02"


def test_portal_suspended_with_max_rows() -> None:
    tracker = connect()
    client = (
        b.parse("select g from generate_series(1, 3) g") + b.bind(portal="c") + b.describe("P", "c")
    )
    client += b.execute("c", 2) + b.execute("c", 2) + b.sync()
    server = EXT_OK + b.row_description([("g", 23)]) + b.data_row([b"1"]) + b.data_row([b"2"])
    server += b.portal_suspended() + b.data_row([b"3"]) + b.command_complete("SELECT 1") + b.ready()
    exchange(tracker, client, server)
    first, second = statements(tracker.pop_records())
    assert (first.max_rows, first.tag, first.rows, first.note, first.portal_name) == (
        2,
        None,
        2,
        "suspended",
        "c",
    )
    assert (second.tag, second.rows, second.columns) == ("SELECT 1", 1, [("g", 23)])


def test_named_statement_reused_across_syncs_then_closed() -> None:
    tracker = connect()
    exchange(
        tracker,
        b.parse("select $1::int", "q1", (23,)) + b.describe("S", "q1") + b.sync(),
        b.parse_complete()
        + b.parameter_description([23])
        + b.row_description([("int4", 23)])
        + b.ready(),
    )
    for value in (b"1", b"2"):
        exchange(
            tracker,
            b.bind([value], statement="q1") + b.execute() + b.sync(),
            b.bind_complete() + b.data_row([value]) + b.command_complete("SELECT 1") + b.ready(),
        )
    exchange(tracker, b.close("S", "q1") + b.sync(), b.close_complete() + b.ready())
    exchange(
        tracker,
        b.bind([b"3"], statement="q1") + b.execute() + b.sync(),
        b.error("26000", 'prepared statement "q1" does not exist') + b.ready(),
    )
    stmts = statements(tracker.pop_records())
    assert [(s.sql, s.params, s.columns) for s in stmts[:2]] == [
        ("select $1::int", ["1"], [("int4", 23)]),
        ("select $1::int", ["2"], [("int4", 23)]),
    ]
    assert stmts[2].sql == "" and not stmts[2].replayable and stmts[2].error is not None


def test_deallocate_forgets_the_name() -> None:
    tracker = connect()
    exchange(tracker, b.parse("select 1", "q1") + b.sync(), b.parse_complete() + b.ready())
    exchange(tracker, b.query("DEALLOCATE q1"), b.command_complete("DEALLOCATE") + b.ready())
    exchange(
        tracker,
        b.bind(statement="q1") + b.execute() + b.sync(),
        b.error("26000", "gone") + b.ready(),
    )
    assert statements(tracker.pop_records())[-1].note == "unknown prepared statement"


def test_copy_from_stdin_simple() -> None:
    tracker = connect()
    tracker.client_data(b.query("copy t from stdin"), 1.0)
    tracker.server_data(b.copy_in_response(2), 1.1)
    tracker.client_data(b.copy_data(b"1\ta\n") + b.copy_data(b"2\tb\n") + b.copy_done(), 1.2)
    tracker.server_data(b.command_complete("COPY 2") + b.ready(), 1.3)
    (stmt,) = statements(tracker.pop_records())
    assert stmt.copy_bytes() == b"1\ta\n2\tb\n" and stmt.rows == 2 and stmt.replayable


def test_copy_from_stdin_extended_with_pipelined_sync() -> None:
    tracker = connect()
    tracker.client_data(b.parse("copy t from stdin") + b.bind() + b.execute() + b.sync(), 1.0)
    tracker.server_data(EXT_OK + b.copy_in_response(1), 1.1)
    tracker.client_data(b.copy_data(b"x\n") + b.copy_done() + b.sync(), 1.2)
    tracker.server_data(b.command_complete("COPY 1") + b.ready(), 1.3)
    (stmt,) = statements(tracker.pop_records())
    assert stmt.copy_bytes() == b"x\n" and stmt.protocol == "extended"
    assert not tracker.desynchronized


def test_copy_over_cap() -> None:
    tracker = connect(copy_cap=10)
    tracker.client_data(b.query("copy t from stdin"), 1.0)
    tracker.server_data(b.copy_in_response(1), 1.1)
    tracker.client_data(b.copy_data(b"123456\n") + b.copy_data(b"789012\n") + b.copy_done(), 1.2)
    tracker.server_data(b.command_complete("COPY 2") + b.ready(), 1.3)
    (stmt,) = statements(tracker.pop_records())
    assert stmt.copy_data is None and not stmt.replayable and stmt.note == "copy data over cap"


def test_copy_fail() -> None:
    tracker = connect()
    tracker.client_data(b.query("copy t from stdin"), 1.0)
    tracker.server_data(b.copy_in_response(1), 1.1)
    tracker.client_data(b.copy_data(b"x\n") + b.copy_fail("client gave up"), 1.2)
    tracker.server_data(b.error("57014", "COPY from stdin failed: client gave up") + b.ready(), 1.3)
    (stmt,) = statements(tracker.pop_records())
    assert stmt.error is not None and stmt.error.sqlstate == "57014"
    exchange(tracker, b.query("select 1"), b.command_complete("SELECT 1") + b.ready())
    assert statements(tracker.pop_records())[0].sql == "select 1"


def test_copy_to_stdout_digests_rows() -> None:
    tracker = connect()
    server = b.copy_out_response(1) + b.copy_data(b"1\n") + b.copy_data(b"2\n") + b.copy_done()
    exchange(
        tracker, b.query("copy t to stdout"), server + b.command_complete("COPY 2") + b.ready()
    )
    (stmt,) = statements(tracker.pop_records())
    expected = RowDigest()
    expected.add_datarow(b"1\n")
    expected.add_datarow(b"2\n")
    assert (stmt.rows, stmt.digest) == (2, expected.ordered)


def test_function_call() -> None:
    tracker = connect()
    exchange(
        tracker, b.function_call(1598, [b"\x00\x00\x00\x01"]), b.function_result(b"ok") + b.ready()
    )
    (stmt,) = statements(tracker.pop_records())
    assert (stmt.protocol, stmt.sql, stmt.replayable) == (
        "function",
        "-- function call oid 1598",
        False,
    )


def test_secrets_never_recorded() -> None:
    tracker = ConnectionTracker("s", "c", 0.0)
    tracker.client_data(b.startup({"user": "u"}), 0.0)
    tracker.server_data(b.auth(10, b"SCRAM-SHA-256\0\0"), 0.0)
    tracker.client_data(b.password("p4ssw0rd-scram"), 0.0)
    tracker.server_data(
        b.auth(11, b"r=p4ssw0rd-nonce") + b.auth(0) + b.backend_key_data(1, b"p4ssw0rd-key"), 0.0
    )
    tracker.server_data(b.ready(), 0.0)
    exchange(
        tracker,
        b.query("ALTER ROLE u PASSWORD 'p4ssw0rd-sql'"),
        b.command_complete("ALTER ROLE") + b.ready(),
    )
    exchange(
        tracker,
        b.parse("select dblink_connect('host=x password=p4ssw0rd-conninfo')")
        + b.bind()
        + b.execute()
        + b.sync(),
        EXT_OK + b.data_row([b"OK"]) + b.command_complete("SELECT 1") + b.ready(),
    )
    records = tracker.pop_records() + tracker.close(1.0)
    dumped = json.dumps([r.to_json() for r in records])
    assert "p4ssw0rd" not in dumped
    stmts = statements(records)
    assert [(s.replayable, s.note) for s in stmts] == [(False, "secret redacted")] * 2


def test_response_without_request_desynchronizes() -> None:
    tracker = connect()
    tracker.server_data(b.parse_complete(), 1.0)
    assert tracker.desynchronized
    exchange(tracker, b.query("select 1"), b.command_complete("SELECT 1") + b.ready())
    assert statements(tracker.pop_records()) == []
    end = tracker.close(2.0)[-1]
    assert isinstance(end, SessionEnd) and not end.recorded


def test_absurd_length_desynchronizes_quietly() -> None:
    tracker = connect()
    tracker.client_data(b"S" + struct.pack("!I", 0x7FFFFFFF), 1.0)
    assert tracker.desynchronized and "absurd" in tracker.reason


def test_internal_errors_never_escape() -> None:
    tracker = connect()
    tracker.client_data(b.message(b"B", b"\x00\x00\xff"), 1.0)  # truncated Bind
    assert tracker.desynchronized and "internal error" in tracker.reason


def test_state_stays_bounded_on_a_long_connection() -> None:
    tracker = connect()
    for i in range(2000):
        exchange(
            tracker,
            b.bind([str(i).encode()], statement="") + b.execute() + b.sync()
            if i
            else b.parse("select $1") + b.bind([b"0"]) + b.execute() + b.sync(),
            (EXT_OK if not i else b.bind_complete()) + b.command_complete("SELECT 1") + b.ready(),
        )
        tracker.pop_records()
    state = tracker.state
    assert not state.queue and not state.awaiting and len(state.prepared) == 1


def _conversation() -> list[tuple[bool, bytes]]:
    return [
        (True, STARTUP),
        (False, HELLO + b.ready()),
        (True, b.query("select 1; select 2")),
        (
            False,
            b.row_description([("a", 23)])
            + b.data_row([b"1"])
            + b.command_complete("SELECT 1")
            + b.row_description([("a", 23)])
            + b.data_row([b"2"])
            + b.command_complete("SELECT 1")
            + b.ready(),
        ),
        (
            True,
            extended("select $1", [b"x"])
            + extended("bad", [])
            + extended("select 3", [])
            + b.sync(),
        ),
        (
            False,
            EXT_OK
            + b.row_description([("a", 25)])
            + b.data_row([b"x"])
            + b.command_complete("SELECT 1")
            + b.error("42601", "syntax")
            + b.ready(),
        ),
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_records_do_not_depend_on_chunking(sizes: list[int]) -> None:
    def run(chunked: bool) -> list[dict[str, object]]:
        tracker = ConnectionTracker("s", "c", 0.0)
        for i, (from_client, data) in enumerate(_conversation()):
            feed = tracker.client_data if from_client else tracker.server_data
            pos, k = 0, 0
            while pos < len(data):
                size = sizes[k % len(sizes)] if chunked else len(data)
                feed(data[pos : pos + size], float(i))
                pos, k = pos + size, k + 1
        return [r.to_json() for r in tracker.pop_records() + tracker.close(9.0)]

    whole = run(False)
    assert [r["type"] for r in whole] == ["session", *["statement"] * 4, "session_end"]
    assert run(True) == whole
