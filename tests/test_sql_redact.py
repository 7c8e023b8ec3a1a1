"""Passwords written in SQL never reach a capture."""

from __future__ import annotations

import pytest

from replay.sql.redact import redact_sql


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE ROLE app LOGIN PASSWORD 's3cret'", "CREATE ROLE app LOGIN PASSWORD '***'"),
        (
            "alter user app with encrypted password 'md5abc'",
            "alter user app with encrypted password '***'",
        ),
        ("ALTER USER app PASSWORD 'it''s'", "ALTER USER app PASSWORD '***'"),
        (
            "CREATE USER u PASSWORD $$a'b$$ VALID UNTIL 'infinity'",
            "CREATE USER u PASSWORD '***' VALID UNTIL 'infinity'",
        ),
        ("ALTER ROLE u PASSWORD E's\\'x'", "ALTER ROLE u PASSWORD '***'"),
        (
            "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'bob', password 'pw')",
            "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'bob', password '***')",
        ),
        (
            "ALTER USER MAPPING FOR a SERVER s OPTIONS (SET password"
            " 'pw', ADD password_required 'f')",
            "ALTER USER MAPPING FOR a SERVER s OPTIONS (SET password"
            " '***', ADD password_required '***')",
        ),
        (
            "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', password 'pw')",
            "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', password '***')",
        ),
        (
            "select dblink_connect('host=x password=secret dbname=y')",
            "select dblink_connect('host=x password=*** dbname=y')",
        ),
        (
            "CREATE SUBSCRIPTION sub CONNECTION 'dbname=x password = ''a b''' PUBLICATION p",
            "CREATE SUBSCRIPTION sub CONNECTION 'dbname=x password = ***' PUBLICATION p",
        ),
        (
            "select dblink('postgresql://bob:secret@db/x', 'select 1')",
            "select dblink('postgresql://bob:***@db/x', 'select 1')",
        ),
        ("begin; alter role x password 'a'; commit", "begin; alter role x password '***'; commit"),
    ],
)
def test_redacted(sql: str, expected: str) -> None:
    assert redact_sql(sql) == (expected, True)


@pytest.mark.parametrize(
    "sql",
    [
        "select * from users where id = $1",
        "select password from users where name = 'x'",
        "update users set password = $1 where id = $2",
        "SET password_encryption = 'scram-sha-256'",
        "ALTER ROLE u PASSWORD NULL",
        "insert into links values ('https://example.com/a')",
        "-- password 'x' in a comment is not SQL\nselect 1",
    ],
)
def test_unchanged(sql: str) -> None:
    assert redact_sql(sql) == (sql, False)


def test_unterminated_literal_is_over_redacted() -> None:
    redacted, changed = redact_sql("ALTER ROLE u PASSWORD 'abc")
    assert changed and "abc" not in redacted


def test_common_case_is_a_cheap_no_op() -> None:
    sql = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    assert redact_sql(sql)[0] is sql
