"""The pytest plugin: each query class of a capture becomes a test item."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from conftest import CaptureProxy, PgServer


def test_one_breaking_class_is_one_failed_item(
    pytester: pytest.Pytester, capture_proxy: CaptureProxy, pg_server: PgServer, tmp_path: Path
) -> None:
    db = pg_server.create_database()
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as conn:
        conn.execute("create table items (id int primary key, name text)")
        conn.execute("insert into items select i, 'item ' || i from generate_series(1, 20) i")
    with psycopg.connect(capture_proxy.url(db), autocommit=True) as app:
        for i in (1, 2, 3):
            app.execute("select name from items where id = %s", [i])
        app.execute("select count(*) from items")
        app.execute("select 1")
    capture_proxy.stop()
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_rename.sql").write_text("alter table items rename column name to title;\n")

    result = pytester.runpytest_subprocess(
        "--replay-capture",
        str(capture_proxy.out),
        "--replay-source",
        pg_server.dsn(db),
        "--replay-scratch",
        pg_server.url,
        "--replay-migrations",
        str(migrations),
        "--replay-out",
        str(tmp_path / "report"),
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(
        [
            "*fails: 3 statements of this class*",
            "*candidate: *42703*name*",
            "*001_rename.sql*",
        ]
    )


def test_without_a_capture_the_plugin_adds_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
