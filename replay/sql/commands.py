"""The commands in one SQL text that the protocol cares about, from pglast.

A few SQL commands change what the client and the server must agree on, beyond the
statement's own result (see docs/design.md, "SQL facts"):

- ``DEALLOCATE name`` / ``DEALLOCATE ALL`` / ``DISCARD ALL`` drop prepared statements,
  the SQL-level and the protocol-level ones alike (one namespace per session);
- ``COPY ... FROM STDIN`` / ``TO STDOUT`` start a copy sub-protocol (PostgreSQL docs
  55.2.6): its data must follow before any other message;
- ``COMMIT``, ``END`` and ``PREPARE TRANSACTION`` end a transaction, and the server
  answers them with the tag ROLLBACK when the transaction had already failed.

:func:`commands` answers these once per text, from the parse tree, so quoting,
comments before the keyword and multi-statement texts are read as the server reads
them. Most texts hold none of the keywords, which a plain word search tells at once
(cheaper than the cache lookup's hashing of a long text, far cheaper than a parse);
only the others are parsed, and remembered in a bounded cache. A text pglast cannot
parse is read by the keyword patterns the server would see at the start of the text,
erring on the safe side (see :func:`_unparsed`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pglast import ast, enums, parser

from replay.sql.fingerprint import CACHED_TEXTS

Copy = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Commands:
    """What one SQL text (one statement, or a multi-statement Query string) does to the
    session's protocol state, in the text's order."""

    deallocates: tuple[str, ...] = ()  # prepared statement names, as the server folds them
    deallocates_all: bool = False  # DEALLOCATE ALL or DISCARD ALL
    copy: Copy | None = None  # COPY FROM STDIN ("in") or TO STDOUT ("out")
    ends_transaction: bool = False  # COMMIT, END or PREPARE TRANSACTION
    parsed: bool = True  # False: pglast could not parse it, the facts are a best reading

    @property
    def changes_prepared(self) -> bool:
        """Whether it drops prepared statements (the client's map of names must follow)."""
        return self.deallocates_all or bool(self.deallocates)

    @property
    def alone(self) -> bool:
        """Whether its request must be alone in flight: what follows depends on its
        answer (a COPY's data, the prepared names)."""
        return self.copy is not None or self.changes_prepared


NOTHING = Commands()

# END is a word of every CASE expression: only END as a command (at the start of the
# text or after a semicolon, past comments) is worth a parse.
# Space and comments, each way of reading them unique (no catastrophic backtracking):
# a line comment runs to the end of its line, a block comment to its first */.
_GAP = r"(?:\s|--[^\n]*(?:\n|$)|/\*(?:[^*]|\*(?!/))*\*/)*"
_END_COMMAND = re.compile(rf"(?:^|;){_GAP}end\b", re.IGNORECASE | re.DOTALL)


def commands(sql: str) -> Commands:
    """The protocol-relevant commands in ``sql``; :data:`NOTHING` for most texts."""
    lowered = sql.lower()
    # Written out rather than a loop over the words: this runs for every statement.
    if (
        "copy" in lowered
        or "deallocate" in lowered
        or "discard" in lowered
        or "commit" in lowered
        or "prepare" in lowered
        or ("end" in lowered and _END_COMMAND.search(sql) is not None)
    ):
        return _commands(sql)
    return NOTHING


def alone(sql: str) -> bool:
    """Whether a request sending ``sql`` must be alone in flight (:attr:`Commands.alone`).
    Asked for every statement sent: only the words that can make it so are looked for."""
    lowered = sql.lower()
    if "copy" in lowered or "deallocate" in lowered or "discard" in lowered:
        return _commands(sql).alone
    return False


_TX_ENDS = frozenset(
    {enums.TransactionStmtKind.TRANS_STMT_COMMIT, enums.TransactionStmtKind.TRANS_STMT_PREPARE}
)


@lru_cache(maxsize=CACHED_TEXTS)
def _commands(sql: str) -> Commands:
    try:
        statements = parser.parse_sql(sql)
    except Exception:  # pglast raises ParseError and, on odd input, others
        return _unparsed(sql)
    names: list[str] = []
    every = False
    copy: Copy | None = None
    ends = False
    for raw in statements:
        node = raw.stmt
        if isinstance(node, ast.DeallocateStmt):
            if node.isall or node.name is None:
                every = True
            else:
                names.append(node.name)
        elif isinstance(node, ast.DiscardStmt):
            every = every or node.target == enums.DiscardMode.DISCARD_ALL
        elif isinstance(node, ast.CopyStmt):
            # No file and no program: the data comes from, or goes to, the client.
            if copy is None and node.filename is None and not node.is_program:
                copy = "in" if node.is_from else "out"
        elif isinstance(node, ast.TransactionStmt):
            ends = ends or node.kind in _TX_ENDS
    return Commands(tuple(names), every, copy, ends)


# What the server would see at the start of a text pglast cannot parse.
_DEALLOCATE = re.compile(
    rf'^{_GAP}deallocate\s+(?:prepare\s+)?("(?:[^"]|"")+"|[\w$]+)', re.IGNORECASE | re.DOTALL
)
_DISCARD_ALL = re.compile(rf"^{_GAP}discard\s+all\b", re.IGNORECASE | re.DOTALL)
_COPY = re.compile(r"\bcopy\b", re.IGNORECASE)
_FROM_STDIN = re.compile(r"\bfrom\s+stdin\b", re.IGNORECASE)
_ENDS = re.compile(
    rf"^{_GAP}(?:commit|end|prepare\s+transaction)\b(?!\s+prepared)", re.IGNORECASE | re.DOTALL
)


def _unparsed(sql: str) -> Commands:
    """A best reading of a text pglast cannot parse (the server may well reject it too).
    Erring on the safe side: any COPY word makes it a COPY (alone in flight, and a COPY
    that is not one is answered like any statement), a DEALLOCATE whose name cannot be
    read drops every name (re-preparing a name is always safe: each Parse of a name is
    preceded by its Close)."""
    names: tuple[str, ...] = ()
    every = _DISCARD_ALL.match(sql) is not None
    if match := _DEALLOCATE.match(sql):
        name = match[1]
        if name.lower() == "all":
            every = True
        else:
            names = (name[1:-1].replace('""', '"') if name[0] == '"' else name.lower(),)
    elif not every and re.match(rf"^{_GAP}deallocate\b", sql, re.IGNORECASE | re.DOTALL):
        every = True
    copy: Copy | None = None
    if _COPY.search(sql):
        copy = "in" if _FROM_STDIN.search(sql) else "out"
    ends = _ENDS.match(sql) is not None
    return Commands(names, every, copy, ends, parsed=False)
