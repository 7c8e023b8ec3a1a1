"""Synthetic replay runs for the comparison and report tests.

:func:`write_run` writes a report folder the way the replay engine does (outcomes with
:class:`OutcomeWriter`, ``run.json``, ``schema.json``) holding one query class per
verdict, a cascaded failure and a lost connection, so every report test reads the same
known run.
"""

from __future__ import annotations

import json
import random
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


def mixed_rows(seed: int) -> list[OutcomeRow]:
    """Every verdict, and many alike rows around them: timed and not (pipelined), with
    and without a second baseline, some alike but slower, in several sessions."""
    rng = random.Random(seed)
    rows = every_verdict_rows()
    sqls = [SQL["ok"], SQL["slower"], "SELECT 1", "SELECT name FROM customers WHERE id = $1"]
    for i in range(400):
        sql = rng.choice(sqls)
        timed = rng.random() < 0.3
        base = rng.choice([0.001, 0.002, 0.0005])
        cand = base * rng.choice([1, 1, 1, 5]) if timed else None
        outcome = ok(rows=i % 3, digest=f"r{i % 3}", duration=base if timed else None)  # type: ignore[arg-type]
        candidate = ok(rows=i % 3, digest=f"r{i % 3}", duration=cand)  # type: ignore[arg-type]
        with_b2 = rng.random() < 0.5
        baseline2 = ok(rows=i % 3, digest=f"r{i % 3}", duration=base * 1.1) if with_b2 else None
        made = row(sql, outcome, candidate, baseline2, session=f"s{rng.randrange(7)}",
                   seq=1000 + i, start=T0 + rng.random() * 100,
                   application_name=rng.choice(["shop", "admin", ""]))  # fmt: skip
        if not with_b2:
            del made.outcomes["baseline2"]
        rows.append(made)
    rng.shuffle(rows)
    return rows


USER_ENUM = json.dumps([["id", INT4], ["status", 16434]])
USER_ENUM_RECREATED = json.dumps([["id", INT4], ["status", 17059]])
TEXT_STATUS = json.dumps([["id", INT4], ["status", TEXT]])


def _answer(rng: random.Random) -> dict[str, Any]:
    rows = rng.choice([0, 1, 2, None])
    return {
        "status": "ok",
        "tag": f"SELECT {rows}",
        "rows": rows,
        "columns": rng.choice([COLUMNS, COLUMNS, USER_ENUM, TEXT_STATUS, "[]"]),
        "digest": rng.choice(["d1", "d2", None]),
        "digest_unordered": rng.choice(["u1", "u2", None]),
        "sqlstate": None,
        "message": None,
        "duration": rng.choice([0.0, 0.0001, 0.0005, 0.001, 0.004, 0.02, None]),
    }


CHANGES = ("same", "tag", "rows", "digest", "unordered", "columns", "enum", "error", "timeout",
           "lost", "skipped", "slow")  # fmt: skip
# What each query class of rule_space_rows does to the candidate in half its statements
# (the last class: anything, in every statement).
PROFILES = ("same", "slow", "same", "digest", "digest", "columns", "enum", "error", "fixed",
            "error", "lost", "any")  # fmt: skip


def _other(
    rng: random.Random, answer: dict[str, Any], change: str, jitter: bool = True
) -> dict[str, Any]:
    """Another target's answer to the same statement, with ``change`` made, and a timing
    that varies (a little on a second baseline: ``jitter`` False)."""
    other = dict(answer)
    if change == "tag":
        other["tag"] = "SELECT 9"
    elif change == "rows":
        other["rows"] = 7
    elif change == "digest":
        other["digest"] = other["digest_unordered"] = "moved"
    elif change == "unordered":
        other["digest_unordered"] = "other rows"
    elif change == "columns":
        other["columns"] = WIDER
    elif change == "enum":
        other["columns"] = USER_ENUM_RECREATED if answer["columns"] == USER_ENUM else TEXT_STATUS
    elif change in ("error", "timeout"):
        other.update(status=change, tag=None, rows=None, columns="[]", digest=None,
                     digest_unordered=None, sqlstate="42703", message="no")  # fmt: skip
    elif change in ("lost", "skipped"):
        other.update(status=change, tag=None, rows=None, digest=None, duration=None)
    if other["duration"] is not None:
        if change == "slow":
            other["duration"] = other["duration"] * 4 + 0.002
        elif jitter:
            other["duration"] = other["duration"] * rng.choice([0.5, 1, 1, 1.5, 3])
        else:
            other["duration"] = other["duration"] * rng.choice([1, 1, 1.1])
    return other


def rule_space_rows(seed: int, count: int = 1500) -> list[dict[str, Any]]:
    """Flat outcome rows (as ``outcomes.jsonl`` holds them) drawn over the statement
    rule's whole space: every status on every target, each aspect differing on the
    candidate or only on the second baseline, user-type OIDs, ordered and unordered
    digests, untimed statements, runs with and without a second baseline, cascades of
    earlier failures (and of failures never seen), rows without a query class. Each of
    the twelve classes does mostly one thing (:data:`PROFILES`), so that classes take
    most verdicts."""
    rng = random.Random(seed)
    failures: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for seq in range(count):
        session = f"s{rng.randrange(40)}"
        k = rng.randrange(len(PROFILES))
        fingerprint = f"fp{k}" if rng.random() > 0.02 else None
        flat: dict[str, Any] = {
            "session": session,
            "seq": seq,
            "start": T0 + rng.randrange(100_000) / 100,
            "fingerprint": fingerprint,
            "sql": f"SELECT {fingerprint}",
            "params": [str(seq)] if rng.random() < 0.5 else [],
            "protocol": rng.choice(["simple", "extended"]),
            "application_name": rng.choice(["shop", "admin", "", "batch"]),
            "ordered": rng.random() < 0.3,
            "captured_sqlstate": None,
            "cascade_of": None,
        }
        baseline = _answer(rng)
        profile = PROFILES[k]
        if profile == "enum":
            baseline["columns"] = USER_ENUM
        if profile == "any":
            change = rng.choice(CHANGES)
        elif profile == "slow":
            change = "slow"
        else:
            change = profile if rng.random() < 0.5 else "same"
        candidate = _other(rng, baseline, change)
        if change == "fixed":
            baseline, candidate = _other(rng, baseline, "error"), baseline
        answers = {"baseline": baseline, "candidate": candidate}
        if k == 9:  # both fail, the same way
            answers["baseline"] = _other(rng, baseline, "error")
        if rng.random() < 0.6:
            noise = rng.choice(CHANGES) if profile == "any" else "same"
            if k in (2, 4) and rng.random() < 0.5:
                noise = "digest"
            answers["baseline2"] = _other(rng, answers["baseline"], noise, jitter=False)
        if rng.random() < 0.05:
            origin = failures.get(session, 10**6)  # 10**6: an origin never seen
            flat["cascade_of"] = origin
            answers["candidate"] = {**answers["candidate"], "status": "error",
                                    "sqlstate": "25P02", "message": "aborted"}  # fmt: skip
        for target, answer in answers.items():
            for key, value in answer.items():
                flat[f"{target}_{key}"] = value
        if any(a["status"] in ("error", "timeout") for a in answers.values()):
            failures[session] = seq
        rows.append(flat)
    return rows


def without_some_fields(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """``rows`` with fields other than the identity left out at random (in about a third
    of the rows), as a file not written by the engine may have them: a missing field
    counts as ``None``."""
    rng = random.Random(seed)
    keep = {"session", "seq", "start", "fingerprint", "sql", "application_name"}
    sparse = []
    for flat in rows:
        flat = dict(flat)
        if rng.random() < 0.3:
            for key in list(flat):
                if key not in keep and rng.random() < 0.15:
                    del flat[key]
        sparse.append(flat)
    return sparse
