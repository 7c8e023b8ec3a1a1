"""Connection strings and HOST:PORT addresses, parsed in one place (pure units)."""

from __future__ import annotations

import pytest

from replay.errors import BadInput
from replay.targets.conninfo import (
    Endpoint,
    address_of,
    join_address,
    parse_conninfo,
    split_address,
    split_password,
    strip_password,
    to_url,
    with_database,
)
from replay.targets.safety import parse_upstream


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("db.internal:5432", ("db.internal", 5432)),
        ("127.0.0.1:6000", ("127.0.0.1", 6000)),
        ("[::1]:5432", ("::1", 5432)),
        ("[2001:db8::7]:6432", ("2001:db8::7", 6432)),
        ("::1:5432", ("::1", 5432)),  # unbracketed: the last colon is the port's
    ],
)
def test_addresses_split_and_join_back(value: str, expected: tuple[str, int]) -> None:
    assert split_address(value) == expected
    assert split_address(join_address(*expected)) == expected


@pytest.mark.parametrize("value", ["db", "db:", ":5432", "db:port", "db:0", "db:70000", "[::1]"])
def test_malformed_addresses_are_refused(value: str) -> None:
    with pytest.raises(BadInput, match="--upstream must be HOST:PORT"):
        split_address(value, "--upstream")


def test_join_brackets_only_ipv6() -> None:
    assert join_address("::1", 5432) == "[::1]:5432"
    assert join_address("localhost", 5432) == "localhost:5432"


def test_the_capture_upstream_reads_ipv6() -> None:
    assert parse_upstream("[::1]:6000") == ("::1", 6000)
    with pytest.raises(BadInput, match="upstream"):
        parse_upstream("nowhere")


@pytest.mark.parametrize(
    ("conninfo", "address"),
    [
        ("postgresql://me@[::1]:6000/shop", "[::1]:6000"),
        ("host=::1 port=6000 dbname=shop", "[::1]:6000"),
        ("postgresql://me@db.internal/shop", "db.internal:5432"),
        ("dbname=shop", "127.0.0.1:5432"),
        ("host=a,b port=6000,6001", "a:6000"),
    ],
)
def test_address_of_a_conninfo(conninfo: str, address: str) -> None:
    assert address_of(conninfo) == address


def test_passwords_leave_the_string_for_the_environment() -> None:
    dsn, env = split_password("postgresql://me:hunter2@db/x")
    assert "hunter2" not in dsn and env["PGPASSWORD"] == "hunter2"
    assert "hunter2" not in strip_password("host=db password=hunter2 dbname=x")
    assert strip_password("postgresql://[") == "<unparsable connection string>"
    with pytest.raises(BadInput, match="not a PostgreSQL connection string"):
        parse_conninfo("host='unterminated")


def test_with_database_keeps_the_server() -> None:
    params = parse_conninfo(with_database("postgresql://me@[::1]:6000/shop", "probe"))
    assert params == {"user": "me", "host": "::1", "port": "6000", "dbname": "probe"}


@pytest.mark.parametrize(
    ("conninfo", "url"),
    [
        ("host=::1 port=6000 user=me dbname=shop", "postgresql://me@[::1]:6000/shop"),
        ("host=db user=me password=p@ss dbname=shop", "postgresql://me:p%40ss@db/shop"),
        ("host=/tmp port=6000 dbname=shop", "postgresql:///shop?host=%2Ftmp&port=6000"),
    ],
)
def test_urls_for_migration_tools(conninfo: str, url: str) -> None:
    assert to_url(conninfo) == url


def test_endpoint_of_ipv6_url() -> None:
    end = Endpoint.of("postgresql://me@[::1]:6000/shop")
    assert end == Endpoint(("::1",), 6000, "shop")
