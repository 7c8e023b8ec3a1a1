"""Query classes: pglast fingerprints and the facts about a statement's SQL we need.

A query class is PostgreSQL's own fingerprint of the parse tree (the same one
pg_stat_statements-style tools use through libpg_query), so ``... WHERE id = 1`` and
``... WHERE id = $1`` fall in one class. SQL that does not parse (the application sent
a syntax error, or a dialect pglast does not know) still gets a stable class from its
normalized text.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from pglast import parser

_SPACE = re.compile(r"\s+")
# SQL texts remembered: an application using parameters sends a few hundred texts over
# and over; one inlining its values (simple protocol) sends a new text every time, and
# a larger cache would only hold them (memory that grows with the run up to its size).
CACHED_TEXTS = 8192
_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


# Two DML texts that differ only in the numbers they inline have one fingerprint: a
# number there is a constant (a value, a LIMIT, a typmod, an ORDER BY position, a $n),
# and constants are not part of it. Parsing every such text (the simple protocol inlines
# values, so each text is new) cost more than replaying it; texts keyed with their
# numbers zeroed are parsed once. Only where that holds for certain: DML, and no quoted
# identifier (which may hold a number). A number glued to a word (t1, 1e5) is no key
# change: \b needs a boundary on both sides.
_NUMBER = re.compile(r"\b\d+\b")
_DML = re.compile(r"\s*(?:select|insert|update|delete|with|values|table)\b", re.IGNORECASE)


_CLASSES: dict[str, str] = {}


def fingerprint(sql: str) -> str:
    """The query class of ``sql``: 16 hex digits."""
    key = _NUMBER.sub("0", sql) if '"' not in sql and _DML.match(sql) else sql
    found = _CLASSES.get(key)
    if found is None:
        if len(_CLASSES) >= CACHED_TEXTS:
            _CLASSES.clear()
        # The first text seen with this key is the one parsed (not the key itself).
        found = _CLASSES[key] = _parsed_fingerprint(sql)
    return found


def _parsed_fingerprint(sql: str) -> str:
    try:
        return str(parser.fingerprint(sql))
    except Exception:  # pglast raises ParseError and, on odd input, others
        text = _SPACE.sub(" ", _LITERAL.sub("?", sql)).strip().lower()
        # A captured text that was not UTF-8 holds lone surrogates (surrogateescape).
        data = text.encode("utf-8", "surrogatepass")
        return "x" + hashlib.blake2b(data, digest_size=8).hexdigest()[1:]


@lru_cache(maxsize=CACHED_TEXTS)
def normalize(sql: str) -> str:
    """``sql`` with its constants replaced by placeholders, for display."""
    try:
        return str(parser.normalize(sql))
    except Exception:
        return _SPACE.sub(" ", sql).strip()


@lru_cache(maxsize=CACHED_TEXTS)
def has_top_level_order_by(sql: str) -> bool:
    """Whether the rows of ``sql`` come in a defined order, so order matters in comparing.

    Only an ORDER BY of the outermost SELECT counts; one inside a subquery or a
    window does not fix the order of the result.
    """
    try:
        statements = parser.parse_sql(sql)
    except Exception:
        return False
    if len(statements) != 1:
        return False
    node = statements[0].stmt
    return type(node).__name__ == "SelectStmt" and bool(getattr(node, "sortClause", None))


@lru_cache(maxsize=CACHED_TEXTS)
def statement_kind(sql: str) -> str:
    """The parse node name of the first statement (``SelectStmt``, ``InsertStmt``...)."""
    try:
        statements = parser.parse_sql(sql)
    except Exception:
        return "Unparsed"
    if not statements:
        return "Empty"
    return type(statements[0].stmt).__name__
