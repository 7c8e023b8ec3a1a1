"""Split a simple-protocol Query string into the statements the server runs.

The server answers a multi-statement Query with one result per statement, so the
tracker needs each statement's text to name what each result belongs to. It uses
PostgreSQL's scanner (pglast) and cuts at top-level semicolons, which is what the
server's grammar does; ``pglast.split(with_parser=False)`` is not used because it
silently drops statements it does not recognize (``foo bar;``), and the server still
answers those, with a syntax error.
"""

from __future__ import annotations

from pglast import parser

_SEMICOLON = "ASCII_59"
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


def split_statements(sql: str) -> list[tuple[str, int, int]]:
    """Each statement as (text, start, end) character offsets into ``sql``.

    Empty statements (only whitespace or comments) are skipped, as the server skips
    them. A string that does not scan (an unterminated literal) is one statement.
    """
    semicolon = sql.find(";")
    if semicolon < 0 or semicolon == len(sql.rstrip()) - 1:
        # No semicolon, or only a final one (pgbench and psql style): one statement,
        # and no scanner needed. A ';' inside a trailing comment changes nothing here.
        stripped = sql[:semicolon].strip() if semicolon >= 0 else sql.strip()
        return [(stripped, 0, len(sql))] if stripped else []
    try:
        tokens = parser.scan(sql)
    except Exception:
        return [(sql, 0, len(sql))]
    found: list[tuple[str, int, int]] = []
    start = 0
    first: int | None = None
    for token in tokens:
        if token.name == _SEMICOLON:
            if first is not None:
                found.append((sql[first : token.start].strip(), first, token.start))
            start = token.end + 1
            first = None
        elif first is None and token.name not in _COMMENTS:
            first = _leading_comment_start(sql, start, token.start)
    if first is not None:
        found.append((sql[first:].strip(), first, len(sql)))
    return found


def _leading_comment_start(sql: str, start: int, token_start: int) -> int:
    """Keep comments that precede a statement with it (they often name the caller)."""
    gap = sql[start:token_start]
    stripped = gap.lstrip()
    return token_start - len(stripped) if stripped.strip() else token_start
