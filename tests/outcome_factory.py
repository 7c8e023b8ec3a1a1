"""Synthetic replay runs for the comparison and report tests.

:func:`write_run` writes a report folder the way the replay engine does (outcomes with
:class:`OutcomeWriter`, ``run.json``, ``schema.json``) holding one query class per
verdict, a cascaded failure and a lost connection, so every report test reads the same
known run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replay.model.outcomes import OutcomeRow, OutcomeWriter, TargetOutcome
from replay.sql.fingerprint import fingerprint, has_top_level_order_by

INT4 = 23
TEXT = 25
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

COLUMNS = json.dumps([["id", INT4], ["name", TEXT]])
WIDER = json.dumps([["id", INT4], ["name", TEXT], ["nickname", TEXT]])


def ok(
    *,
    rows: int = 1,
    digest: str = "d1",
    columns: str = COLUMNS,
    duration: float = 0.001,
    tag: str | None = None,
) -> TargetOutcome:
    return TargetOutcome(
        status="ok",
        tag=tag or f"SELECT {rows}",
        rows=rows,
        columns=columns,
        digest=digest,
        digest_unordered=digest + "u",
        duration=duration,
    )


def error(sqlstate: str = "42703", message: str = 'column "name" does not exist') -> TargetOutcome:
    return TargetOutcome(status="error", sqlstate=sqlstate, message=message, duration=0.0005)


def row(
    sql: str,
    baseline: TargetOutcome,
    candidate: TargetOutcome,
    baseline2: TargetOutcome | None = None,
    *,
    session: str = "s1",
    seq: int = 0,
    start: float = T0,
    params: list[str | None] | None = None,
    application_name: str = "shop",
    cascade_of: int | None = None,
) -> OutcomeRow:
    outcomes = {"baseline": baseline, "candidate": candidate}
    outcomes["baseline2"] = baseline2 if baseline2 is not None else baseline
    return OutcomeRow(
        session=session,
        seq=seq,
        start=start,
        fingerprint=fingerprint(sql),
        sql=sql,
        params=params or [],
        protocol="extended" if params else "simple",
        application_name=application_name,
        ordered=has_top_level_order_by(sql),
        cascade_of=cascade_of,
        outcomes=outcomes,
    )


SQL = {
    "fails": "SELECT id, name FROM customers WHERE id = $1",
    "shape": "SELECT * FROM customers WHERE id = $1",
    "changed": "INSERT INTO orders (customer_id) VALUES ($1) RETURNING status",
    "slower": "SELECT count(*) FROM orders WHERE note LIKE $1",
    "noisy": "SELECT now(), random()",
    "both_fail": "SELECT * FROM missing_table",
    "fixed": "SELECT nickname FROM customers",
    "ok": "SELECT id FROM orders ORDER BY id",
    "cascade": "UPDATE customers SET name = $1 WHERE id = $2",
    "lost": "SELECT pg_sleep(10)",
}


def every_verdict_rows() -> list[OutcomeRow]:
    """One class per verdict, with a cascade after the failure and a lost connection."""
    rows: list[OutcomeRow] = []

    def add(sql: str, *outcomes: TargetOutcome | None, **kw: Any) -> None:
        seq = kw.pop("seq", len(rows))
        start = kw.pop("start", T0 + len(rows))
        rows.append(row(sql, *outcomes, seq=seq, start=start, **kw))  # type: ignore[arg-type]

    for i in range(4):  # fails: 4 statements, 2 sessions, in a transaction in s1
        add(SQL["fails"], ok(), error(), session=f"s{i % 2 + 1}", params=[str(i)])
    add(SQL["cascade"], ok(tag="UPDATE 1"), error("25P02", "current transaction is aborted"),
        cascade_of=0, params=["x", "1"])  # fmt: skip
    for i in range(2):
        add(SQL["shape"], ok(), ok(columns=WIDER), params=[str(i)], session="s3")
    for i in range(3):  # a trigger rewrites status: other rows, baselines agree
        add(SQL["changed"], ok(digest="pending"), ok(digest="held"), params=[str(i)])
    for _ in range(5):
        add(SQL["slower"], ok(duration=0.010), ok(duration=0.050), ok(duration=0.011))
    for i in range(2):
        add(SQL["noisy"], ok(digest="t1"), ok(digest=f"t{i + 2}"), ok(digest=f"t{i + 5}"))
    add(SQL["both_fail"], error("42P01", 'relation "missing_table" does not exist'),
        error("42P01", 'relation "missing_table" does not exist'))  # fmt: skip
    add(SQL["fixed"], error(), ok(columns=json.dumps([["nickname", TEXT]])))
    for i in range(6):
        add(SQL["ok"], ok(rows=3), ok(rows=3), application_name="admin", session=f"s{4 + i % 2}")
    add(SQL["lost"], ok(), TargetOutcome(status="lost", message="server closed the connection"))
    return rows


def write_run(folder: Path, rows: list[OutcomeRow] | None = None) -> Path:
    """A report folder as the replay engine leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    with OutcomeWriter(folder) as writer:
        for outcome_row in rows if rows is not None else every_verdict_rows():
            writer.write(outcome_row)
    run = {
        "capture": "captures/shop",
        "targets": {"baseline": "postgresql://u:secret@h/b", "candidate": "postgresql://h/c"},
        "migrations": [
            {"name": "001_add_nickname.sql", "path": "migrations/001_add_nickname.sql",
             "statements": ["ALTER TABLE customers ADD COLUMN nickname text"]},
            {"name": "002_rename.sql", "path": "migrations/002_rename.sql",
             "statements": ["ALTER TABLE customers RENAME COLUMN name TO full_name"]},
        ],
        "options": {"jobs": 4},
    }  # fmt: skip
    (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    table = {
        "kind": "r",
        "columns": {"id": {"type": "integer", "nullable": False, "default": None}},
        "constraints": {},
        "triggers": {},
    }
    wider = json.loads(json.dumps(table))
    wider["columns"]["nickname"] = {"type": "text", "nullable": True, "default": None}
    schema = {
        "baseline": {"tables": {"public.customers": table}, "enums": {"public.mood": ["a", "b"]}},
        "candidate": {"tables": {"public.customers": wider}, "enums": {"public.mood": ["a"]}},
    }
    (folder / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    return folder
