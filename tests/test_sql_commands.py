"""The protocol-relevant commands of one SQL text (replay.sql.commands): pure."""

from __future__ import annotations

import pytest

from replay.engine.plan import track
from replay.sql import commands as module
from replay.sql.commands import NOTHING, Commands, alone, commands


@pytest.mark.parametrize(
    ("sql", "names", "every"),
    [
        ("DEALLOCATE stmt1", ("stmt1",), False),
        ("deallocate prepare Stmt1", ("stmt1",), False),  # unquoted names fold to lower
        ('DEALLOCATE "Mixed Case"', ("Mixed Case",), False),
        ('DEALLOCATE "a""b";', ('a"b',), False),
        ("/* pool */ -- reset\n  DEALLOCATE q1", ("q1",), False),
        ("DEALLOCATE ALL", (), True),
        ("DISCARD ALL", (), True),
        ("DISCARD PLANS", (), False),
        ("DEALLOCATE a; SELECT 1; DEALLOCATE b", ("a", "b"), False),
        ("SELECT 'deallocate x'", (), False),  # a word in a string is no command
    ],
)
def test_what_a_text_deallocates(sql: str, names: tuple[str, ...], every: bool) -> None:
    facts = commands(sql)
    assert (facts.deallocates, facts.deallocates_all) == (names, every)
    assert facts.changes_prepared == bool(names or every)


@pytest.mark.parametrize(
    ("sql", "copy"),
    [
        ("COPY items FROM STDIN", "in"),
        ("copy items (id, name) from stdin with (format csv)", "in"),
        ("COPY (SELECT 1) TO STDOUT", "out"),
        ("/* export */ COPY items TO STDOUT", "out"),
        ("COPY items FROM '/tmp/items.csv'", None),  # the server reads the file itself
        ("COPY items TO PROGRAM 'gzip > /tmp/x'", None),
        ("SELECT 1; COPY items FROM STDIN", "in"),
        ("SELECT copy FROM backups", None),  # a column named copy
        ("SELECT 1 -- copy this\n", None),
    ],
)
def test_copy_from_stdin_and_to_stdout(sql: str, copy: str | None) -> None:
    assert commands(sql).copy == copy
    assert alone(sql) == (copy is not None)


@pytest.mark.parametrize(
    ("sql", "ends"),
    [
        ("COMMIT", True),
        ("end", True),
        ("END TRANSACTION", True),
        ("commit and chain", True),
        ("PREPARE TRANSACTION 'tx1'", True),
        ("/* app */ COMMIT", True),
        ("COMMIT PREPARED 'tx1'", False),  # outside any transaction block
        ("ROLLBACK", False),
        ("SELECT CASE WHEN true THEN 1 END", False),
        ("PREPARE q AS SELECT 1", False),
        ("SELECT 1; COMMIT", True),
    ],
)
def test_what_ends_a_transaction(sql: str, ends: bool) -> None:
    assert commands(sql).ends_transaction is ends


def test_texts_without_the_keywords_are_not_parsed(monkeypatch) -> None:
    def no_parse(sql: str) -> Commands:
        raise AssertionError(f"parsed {sql!r}")

    monkeypatch.setattr(module, "_commands", no_parse)
    for sql in ("SELECT * FROM items WHERE id = 7", "UPDATE t SET a = CASE WHEN b THEN 1 END"):
        assert commands(sql) is NOTHING
        assert not alone(sql)


def test_facts_are_cached_per_text() -> None:
    module._commands.cache_clear()
    commands("DEALLOCATE cached_one")
    commands("DEALLOCATE cached_one")
    info = module._commands.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert info.maxsize == module.CACHED_TEXTS


@pytest.mark.parametrize(
    ("sql", "names", "every", "copy", "ends"),
    [
        ('DEALLOCATE "Odd" garbage (', ("Odd",), False, None, False),
        ("DEALLOCATE PREPARE x ((", ("x",), False, None, False),
        ("DEALLOCATE ((", (), True, None, False),  # no name to read: every name goes
        ("DISCARD ALL ((", (), True, None, False),
        ("COPY items FROM STDIN WITH ((", (), False, "in", False),
        ("COPY ((", (), False, "out", False),  # a COPY of some kind: alone, to be safe
        ("COMMIT ((", (), False, None, True),
        ("SELECT deallocate FROM ((", (), False, None, False),
    ],
)
def test_texts_pglast_cannot_parse_fall_back_safely(
    sql: str, names: tuple[str, ...], every: bool, copy: str | None, ends: bool
) -> None:
    facts = commands(sql)
    assert not facts.parsed
    assert (facts.deallocates, facts.deallocates_all, facts.copy) == (names, every, copy)
    assert facts.ends_transaction is ends


def test_the_map_of_prepared_names_follows_deallocate_and_discard() -> None:
    key = ("SELECT 1", ())
    prepared = {"a": key, "Mixed": key, "b": key}
    track(prepared, '/* x */ DEALLOCATE "Mixed"; DEALLOCATE A')
    assert prepared == {"b": key}
    track(prepared, "SELECT 'DISCARD ALL'")
    assert prepared == {"b": key}
    track(prepared, "discard all")
    assert prepared == {}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; " + "/* a */" * 40 + " x END",
        "SELECT 1; " + "--" * 40 + " x END",
        "SELECT 1;" + " " * 100_000 + "x END",
    ],
)
def test_comments_and_space_are_read_in_linear_time(sql: str) -> None:
    # Nested quantifiers over comments would take exponential time on these texts.
    assert module._END_COMMAND.search(sql) is None
    assert not module._unparsed(sql).ends_transaction
