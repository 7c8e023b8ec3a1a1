"""Keep passwords written in SQL text out of captures.

Three places carry one in practice:

- ``CREATE/ALTER ROLE|USER ... [ENCRYPTED] PASSWORD 'secret'``;
- ``OPTIONS (password 'secret', ...)`` of user mappings, servers and wrappers (and any
  option whose name mentions a password, such as ``password_required``);
- a conninfo string literal: ``dblink_connect('host=x password=secret')``,
  ``CREATE SUBSCRIPTION ... CONNECTION 'dbname=x password=secret'``, or a URI with
  ``user:secret@``.

The SQL is tokenized with PostgreSQL's own scanner (pglast), so quoting styles
(``''``, ``E'\\''``, dollar quotes) cannot hide a literal. A literal after a
password-named token becomes ``'***'``; inside a conninfo literal only the value is
replaced. When the scanner fails (an unterminated literal), every literal-looking span
after the word ``password`` is blanked: over-redacting beats leaking.
"""

from __future__ import annotations

import re

from pglast import parser

MASK = "'***'"
_LITERALS = frozenset({"SCONST", "USCONST"})
# Inside a conninfo literal: password=value, value unquoted or in conninfo quotes,
# which SQL doubles to '' inside the literal.
_CONNINFO = re.compile(r"(password\s*=\s*)(''(?:[^']|'''')*''|\\?[^\s']+)", re.I)
# postgresql://user:secret@host
_URI = re.compile(r"(://[^:/@\s']*:)([^@\s']+)(@)")
_FALLBACK = re.compile(
    r"(password\w*\s*(?:=\s*)?)('(?:[^']|'')*'?|\$\w*\$.*?(?:\$\w*\$|$))", re.I | re.S
)


def redact_sql(sql: str) -> tuple[str, bool]:
    """``sql`` with passwords masked, and whether anything was masked."""
    if "password" not in sql.lower() and "://" not in sql:
        return sql, False
    try:
        tokens = parser.scan(sql)
    except Exception:
        redacted = _FALLBACK.sub(lambda mt: mt.group(1) + MASK, sql)
        return redacted, redacted != sql
    edits: list[tuple[int, int, str]] = []
    after_password = False
    for token in tokens:
        start, end = token.start, token.end + 1
        if token.name in _LITERALS:
            literal = sql[start:end]
            if after_password:
                edits.append((start, end, MASK))
            else:
                masked = _mask_conninfo(literal)
                if masked != literal:
                    edits.append((start, end, masked))
            after_password = False
        elif token.name in ("SQL_COMMENT", "C_COMMENT"):
            continue
        else:
            after_password = "password" in sql[start:end].lower()
    if not edits:
        return sql, False
    parts = []
    last = 0
    for start, end, text in edits:
        parts.append(sql[last:start])
        parts.append(text)
        last = end
    parts.append(sql[last:])
    return "".join(parts), True


def _mask_conninfo(literal: str) -> str:
    lowered = literal.lower()
    if "password" in lowered:
        literal = _CONNINFO.sub(lambda mt: mt.group(1) + "***", literal)
    if "://" in literal:
        literal = _URI.sub(lambda mt: mt.group(1) + "***" + mt.group(3), literal)
    return literal
