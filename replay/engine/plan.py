"""How one captured statement is sent: the protocol exchanges it takes, in order.

The simple protocol is one Query string (a whole multi-statement batch at once). The
extended protocol sends the exact parameter bytes, type OIDs and text/binary formats;
a named statement is prepared by name on first use, and closed and re-prepared when the
application reused the name for other SQL. The map of prepared names is kept true
after DEALLOCATE and DISCARD ALL (:mod:`replay.sql.commands` reads them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from psycopg import pq

from replay.engine.formats import libpq_formats
from replay.model.records import Statement, param_is_binary
from replay.sql.commands import commands
from replay.wire.build import encode

Prepared = dict[str, tuple[str, tuple[int, ...]]]


class Step(NamedTuple):
    """One protocol exchange of a statement: close, prepare or the execution itself."""

    kind: str
    send: Callable[[], None]
    on_ok: Callable[[], None] | None = None


def track(prepared: Prepared, sql: str) -> None:
    """Keep the map of prepared names true after DEALLOCATE / DISCARD ALL."""
    if not prepared:  # nothing to forget
        return
    facts = commands(sql)
    if facts.deallocates_all:
        prepared.clear()
    for name in facts.deallocates:
        prepared.pop(name, None)


def plan(pgconn: pq.abc.PGconn, statement: Statement, prepared: Prepared) -> list[Step]:
    """The exchanges that send ``statement`` on ``pgconn``; the last one executes it."""
    if statement.protocol == "simple":
        text = statement.batch if statement.batch is not None else statement.sql
        return [
            Step("execute", lambda: pgconn.send_query(encode(text)), lambda: track(prepared, text))
        ]
    sql = encode(statement.sql)
    values = statement.param_bytes()
    formats = [int(param_is_binary(statement.param_formats, i)) for i in range(len(values))]
    # One format for every column: libpq takes no more (see replay.engine.formats).
    result_format = libpq_formats(statement.result_formats).asked
    declared = list(statement.param_types)
    types = (declared + [0] * len(values))[: len(values)]
    name = statement.statement_name
    if not name:
        return [
            Step(
                "execute",
                lambda: pgconn.send_query_params(
                    sql, values, types or None, formats or None, result_format
                ),
                lambda: track(prepared, statement.sql),
            )
        ]
    key = (statement.sql, tuple(declared))
    steps: list[Step] = []
    bname = encode(name)
    if prepared.get(name) != key:
        # As in the pipelined requests (replay.engine.encode): a Close before every Parse
        # of a name, so that a name the map does not know of cannot make the Parse fail.
        steps.append(Step("close", lambda: pgconn.send_close_prepared(bname)))
        prepared.pop(name, None)
        steps.append(
            Step(
                "prepare",
                lambda: pgconn.send_prepare(bname, sql, declared or None),
                lambda: prepared.__setitem__(name, key),
            )
        )
    steps.append(
        Step(
            "execute",
            lambda: pgconn.send_query_prepared(bname, values, formats or None, result_format),
        )
    )
    return steps
