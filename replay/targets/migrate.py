"""The new migrations, applied to the candidate only.

``--migrations DIR`` applies the folder's ``*.sql`` files in name order, each in its
own transaction, unless its first line is ``-- replay: no-transaction`` (for
``CREATE INDEX CONCURRENTLY``, ``ALTER TYPE ... ADD VALUE`` on old servers and the
like): such a file runs statement by statement in autocommit, as does a file that
manages its own transactions (BEGIN/COMMIT). Statements are split with pglast, so a
failure names the statement, and the report can blame a single statement.

``--migrate-cmd`` runs any tool (alembic, django, dbmate, flyway, sqitch ...) with
``DATABASE_URL`` and the ``PG*`` variables pointing at the candidate.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pglast
import psycopg

from replay.errors import BadInput, MigrationError
from replay.sql.fingerprint import statement_kind
from replay.targets.conninfo import parse_conninfo, to_url

NO_TRANSACTION = re.compile(r"^\s*--\s*replay:\s*no-transaction\b", re.IGNORECASE)


@dataclass(frozen=True)
class Migration:
    """One migration file (or command) and the statements it is made of."""

    name: str
    path: Path | None = None
    statements: tuple[str, ...] = ()
    transactional: bool = True
    command: str | None = None
    text: str = field(default="", repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "command": self.command,
            "transactional": self.transactional,
            "statements": list(self.statements),
        }


def split_statements(text: str) -> tuple[str, ...] | None:
    """The statements of ``text`` as pglast splits them; None if pglast cannot parse it."""
    try:
        return tuple(str(s) for s in pglast.split(text))
    except Exception:  # pglast raises ParseError; newer syntax may trip it
        return None


def load(path: Path) -> Migration:
    """Read one migration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read migration {path}: {exc}") from exc
    first_line = text.split("\n", 1)[0]
    statements = split_statements(text)
    own_transactions = statements is not None and any(
        statement_kind(s) == "TransactionStmt" for s in statements
    )
    transactional = not NO_TRANSACTION.match(first_line) and not own_transactions
    return Migration(
        name=path.name,
        path=path,
        statements=statements if statements is not None else (text,),
        transactional=transactional,
        text=text,
    )


def discover(folder: Path | str) -> list[Migration]:
    """The ``*.sql`` files of ``folder`` in name order."""
    root = Path(folder)
    if not root.is_dir():
        raise BadInput(f"migrations folder not found: {root}")
    return [load(path) for path in sorted(root.glob("*.sql"), key=lambda p: p.name)]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _server_error(exc: psycopg.Error) -> str:
    diag = exc.diag
    if diag.sqlstate:
        return f"{diag.sqlstate} {diag.message_primary}"
    return _first_line(str(exc))


def apply(conninfo: str, migration: Migration) -> None:
    """Apply one migration file to the database at ``conninfo``."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise MigrationError(
            f"migration {migration.name}: cannot connect to the candidate: {_server_error(exc)}"
        ) from exc
    with conn:
        conn.add_notice_handler(lambda diag: None)
        done = 0
        try:
            with conn.transaction() if migration.transactional else contextlib.nullcontext():
                for statement in migration.statements:
                    conn.execute(statement.encode())
                    done += 1
        except psycopg.Error as exc:
            failed = migration.statements[min(done, len(migration.statements) - 1)]
            where = f" (statement {done + 1}: {_first_line(failed)[:80]})"
            raise MigrationError(
                f"migration {migration.name} failed{where}: {_server_error(exc)}"
            ) from exc


def apply_folder(conninfo: str, folder: Path | str) -> list[Migration]:
    """Apply every migration of ``folder`` in order; the list of those applied."""
    migrations = discover(folder)
    for migration in migrations:
        apply(conninfo, migration)
    return migrations


def command_environment(conninfo: str) -> dict[str, str]:
    """The environment a migration tool finds the candidate in."""
    params = parse_conninfo(conninfo)
    env = dict(os.environ)
    env["DATABASE_URL"] = to_url(conninfo)
    for key, var in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("dbname", "PGDATABASE"),
        ("password", "PGPASSWORD"),
    ):
        if key in params:
            env[var] = params[key]
        else:
            env.pop(var, None)
    return env


def run_command(conninfo: str, command: str, *, timeout: float | None = None) -> Migration:
    """Run a migration tool against the candidate; MigrationError if it fails."""
    try:
        done = subprocess.run(
            command,
            shell=True,
            env=command_environment(conninfo),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise MigrationError(f"migration command {command!r} timed out") from exc
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines()]
        detail = next((line for line in reversed(lines) if line), f"exit {done.returncode}")
        raise MigrationError(f"migration command {command!r} failed: {detail}")
    return Migration(name=command, command=command, transactional=False)
