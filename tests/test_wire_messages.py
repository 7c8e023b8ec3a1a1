"""The one reader and the one encoder of v3 message bodies (replay.wire.messages and
replay.wire.build): pure, no server."""

from __future__ import annotations

import pytest

from replay.wire import build as b
from replay.wire import messages as m


@pytest.mark.parametrize(
    ("tag", "rows"),
    [
        ("INSERT 0 5", 5),
        ("SELECT 3", 3),  # also the tag of CREATE TABLE AS and SELECT INTO
        ("UPDATE 0", 0),
        ("DELETE 12", 12),
        ("MERGE 4", 4),
        ("FETCH 2", 2),
        ("MOVE 7", 7),
        ("COPY 100", 100),
        ("CREATE TABLE", None),
        ("DEALLOCATE ALL", None),
        ("BEGIN", None),
        ("SELECT", None),
        ("", None),
        # Tags that are not counted, whatever their last word: no row count.
        ("LISTEN 5", None),
        ("CREATE EXTENSION 2", None),
    ],
)
def test_rows_from_tag_reads_counts_only_where_the_docs_say(tag: str, rows: int | None) -> None:
    assert m.rows_from_tag(tag) == rows


def test_row_description_fields_with_their_formats() -> None:
    message = b.row_description([("id", 23), ("naïve", 25), ("at", 1184)], formats=[1, 0, 1])
    body = message[5:]
    assert m.row_fields(body) == [(b"id", 23, 1), ("naïve".encode(), 25, 0), (b"at", 1184, 1)]
    assert m.parse_row_description(body) == [("id", 23), ("naïve", 25), ("at", 1184)]


def test_request_messages_read_back_as_written() -> None:
    parse = b.parse("SELECT $1, $2", "st", [23, 0xFFFFFFFF])
    assert parse[:1] == b"P"
    assert m.parse_parse(parse[5:]) == ("st", "SELECT $1, $2", [23, 0xFFFFFFFF])
    # A negative OID is the same 32 bits.
    assert b.parse("SELECT 1", "st", [-1]) == b.parse("SELECT 1", "st", [0xFFFFFFFF])
    bind = b.bind(
        [b"\x00\x00\x00\x07", None, b"x"],
        portal="",
        statement="st",
        formats=[1, 0, 0],
        result_formats=[0, 1],
    )
    assert m.parse_bind(bind[5:]) == (
        "",
        "st",
        [1, 0, 0],
        [b"\x00\x00\x00\x07", None, b"x"],
        [0, 1],
    )
    assert m.parse_target(b.close("S", "st")[5:]) == ("S", "st")
    assert m.parse_execute(b.execute("", 0)[5:]) == ("", 0)


def test_text_that_is_not_utf8_goes_out_as_it_came_in() -> None:
    # A capture keeps bytes that are not UTF-8 as surrogates (surrogateescape).
    sql = b"SELECT '\xff'".decode("utf-8", "surrogateescape")
    text = b"SELECT '\xff'"
    assert b.query(sql) == b"Q" + (len(text) + 5).to_bytes(4, "big") + text + b"\0"


@pytest.mark.parametrize(
    ("severity", "sqlstate", "ends"),
    [
        ("FATAL", "57P01", True),  # admin_shutdown: the backend was terminated
        ("PANIC", "XX000", True),
        ("ERROR", "57P04", True),
        ("ERROR", "08006", True),  # connection_failure
        ("ERROR", "57014", False),  # query_canceled: the connection stays
        ("ERROR", "42703", False),
    ],
)
def test_which_errors_end_the_connection(severity: str, sqlstate: str, ends: bool) -> None:
    assert m.ends_connection(severity, sqlstate) is ends
