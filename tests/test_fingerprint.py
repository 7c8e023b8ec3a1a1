"""Query classes: the numbers-zeroed key never joins two classes pglast tells apart."""

from __future__ import annotations

import pytest
from pglast import parser

from replay.sql import fingerprint as module
from replay.sql.fingerprint import fingerprint

# Pairs whose texts differ only in standalone numbers: one class only where pglast says so.
PAIRS = [
    ("SELECT balance FROM accounts WHERE id = 1;", "SELECT balance FROM accounts WHERE id = 9;"),
    ("select a from t1", "select a from t2"),
    ('select 1 from "table 1"', 'select 1 from "table 2"'),
    ("fetch 10 from c", "fetch 20 from c"),
    ("create sequence s start 1", "create sequence s start 5"),
    ("select * from t order by 1 limit 5 offset 2", "select * from t order by 2 limit 7 offset 3"),
    ("select x::numeric(10,2), a[1:2] from t", "select x::numeric(12,3), a[3:4] from t"),
    ("insert into t values (1, 2.5, -3)", "insert into t values (7, 8.5, -9)"),
    ("update t set a = a + 1 where id = 2", "update t set a = a + 5 where id = 6"),
    ("with x as (select 1) table x fetch first 3 rows only", "with x as (select 2) table x"),
    ("select $1 + $2", "select $3 + $4"),
    ("select 1e5, 0x1F", "select 2e5, 0x2F"),
    ("select 'a 1' || 2", "select 'a 3' || 4"),
    ("select 1 +", "select 2 +"),  # no parse: classed by its normalized text
]  # fmt: skip


def _pglast(sql: str) -> str | None:
    try:
        return str(parser.fingerprint(sql))
    except Exception:
        return None


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_same_class_exactly_where_pglast_says_so(first: str, second: str) -> None:
    module._CLASSES.clear()
    a, b = fingerprint(first), fingerprint(second)  # the second may come from the cache
    module._CLASSES.clear()
    assert fingerprint(second) == b
    if _pglast(first) is not None:
        assert a == _pglast(first) and b == _pglast(second)
        assert (a == b) == (_pglast(first) == _pglast(second))
    else:
        assert a == b and a.startswith("x")


def test_texts_that_differ_in_their_numbers_are_parsed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    real = module._parsed_fingerprint

    def counting(sql: str) -> str:
        parsed.append(sql)
        return real(sql)

    module._CLASSES.clear()
    monkeypatch.setattr(module, "_parsed_fingerprint", counting)
    classes = {fingerprint(f"SELECT abalance FROM a WHERE aid = {i};") for i in range(100)}
    assert len(classes) == 1 and len(parsed) == 1
    fingerprint("fetch 10 from c")
    fingerprint("fetch 20 from c")
    assert len(parsed) == 3  # not DML: every text parsed


def test_a_text_that_was_not_utf8_gets_a_class() -> None:
    """Regression: psycopg's suite sends non-UTF-8 bytes in SQL; the capture keeps them as
    lone surrogates, and the class of such a text raised UnicodeEncodeError in inspect."""
    odd = "select $$\udca4$$"
    assert fingerprint(odd) == fingerprint(odd) and fingerprint(odd) != fingerprint("select 1")
