"""The new migrations, applied to the candidate only.

``--migrations DIR`` applies the folder's ``*.sql`` files in name order, each in its
own transaction, unless its first line is ``-- replay: no-transaction`` (for
``CREATE INDEX CONCURRENTLY``, ``ALTER TYPE ... ADD VALUE`` on old servers and the
like): such a file runs statement by statement in autocommit, as does a file that
manages its own transactions (BEGIN/COMMIT). Statements are split with pglast, so a
failure names the statement, and the report can blame a single statement.

``--migrate-cmd`` runs any tool (alembic, django, dbmate, flyway, sqitch ...) with
``DATABASE_URL`` and the ``PG*`` variables pointing at the candidate.

Neither may hang the run (``--migration-timeout``): each statement of a file gets a
watchdog that cancels it (a server-side ``statement_timeout`` would not do: a migration
may set its own), and a command that outlives its time is killed with every process it
started (it runs in a session of its own, so the whole group goes).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pglast
import psycopg
from psycopg import sql

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


@contextlib.contextmanager
def _watchdog(
    conn: psycopg.Connection[tuple[object, ...]], seconds: float | None
) -> Iterator[Callable[[], bool]]:
    """Cancel what ``conn`` runs once ``seconds`` have passed; yields "did it fire?"."""
    if not seconds:
        yield lambda: False
        return
    fired = threading.Event()
    cancelling = threading.Lock()

    def cancel() -> None:
        with cancelling:
            fired.set()
            conn.cancel_safe(timeout=10)

    timer = threading.Timer(seconds, cancel)
    timer.daemon = True
    timer.start()
    try:
        yield fired.is_set
    finally:
        timer.cancel()
        # A cancel under way must land before the next statement starts, or it could
        # cancel that one instead (an idle server ignores it).
        with cancelling:
            pass


def apply(conninfo: str, migration: Migration, *, timeout: float | None = None) -> None:
    """Apply one migration file to the database at ``conninfo``; each statement is
    cancelled after ``timeout`` seconds (None: no limit), failing the migration."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise MigrationError(
            f"migration {migration.name}: cannot connect to the candidate: {_server_error(exc)}"
        ) from exc
    with conn:
        conn.add_notice_handler(lambda diag: None)
        done, timed_out = 0, False
        try:
            with conn.transaction() if migration.transactional else contextlib.nullcontext():
                for statement in migration.statements:
                    with _watchdog(conn, timeout) as fired:
                        try:
                            conn.execute(statement.encode())
                        finally:
                            timed_out = fired()
                    done += 1
        except psycopg.Error as exc:
            failed = migration.statements[min(done, len(migration.statements) - 1)]
            where = f" (statement {done + 1}: {_first_line(failed)[:80]})"
            if timed_out and isinstance(exc, psycopg.errors.QueryCanceled):
                raise MigrationError(
                    f"migration {migration.name} timed out after {timeout:g} s{where}; "
                    "see --migration-timeout"
                ) from exc
            raise MigrationError(
                f"migration {migration.name} failed{where}: {_server_error(exc)}"
            ) from exc


_VERSION = re.compile(r"^(\d+)")


def version_of(name: str) -> str:
    """The version a migration tool records for a file: its leading digits, without
    leading zeros (``0003_add_title.sql`` is 3, as golang-migrate, dbmate, Rails and
    sqitch-style names number them), else its name without ``.sql``."""
    found = _VERSION.match(name)
    return str(int(found[1])) if found else name.removesuffix(".sql")


def recorded_versions(conninfo: str, table: str) -> set[str]:
    """The versions the database records as applied, from ``TABLE[:COLUMN]`` (``TABLE``
    may be schema-qualified; column ``version`` by default), normalized as
    :func:`version_of` numbers files."""
    relation, _, column = table.partition(":")
    name = sql.Identifier(*relation.split("."))
    query = sql.SQL("SELECT {}::text FROM {}").format(sql.Identifier(column or "version"), name)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.Error as exc:
        raise BadInput(
            f"--applied-versions {table}: cannot read the applied versions: {_server_error(exc)}"
        ) from exc
    return {str(int(v)) if str(v).isdigit() else str(v) for (v,) in rows if v is not None}


def apply_folder(
    conninfo: str,
    folder: Path | str,
    *,
    timeout: float | None = None,
    applied_versions: str | None = None,
) -> list[Migration]:
    """Apply the migrations of ``folder`` in order; the list of those applied.
    ``timeout``: seconds each statement may run (None: no limit). ``applied_versions``:
    where the database records the versions already applied (``TABLE[:COLUMN]``); those
    files are skipped: the snapshot already has them."""
    migrations = discover(folder)
    if applied_versions:
        done = recorded_versions(conninfo, applied_versions)
        migrations = [m for m in migrations if version_of(m.name) not in done]
    for migration in migrations:
        apply(conninfo, migration, timeout=timeout)
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


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill the command and everything it started (its own session's process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_command(conninfo: str, command: str, *, timeout: float | None = None) -> Migration:
    """Run a migration tool against the candidate; MigrationError if it fails or runs
    longer than ``timeout`` seconds (None: no limit), when it is killed, children too."""
    # A session of its own: killing the shell alone would leave the tool running (and
    # holding the output pipes, so that waiting for them would hang as well).
    process = subprocess.Popen(
        command,
        shell=True,
        env=command_environment(conninfo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(process)
        raise MigrationError(
            f"migration command {command!r} timed out after {timeout:g} s and was killed; "
            "see --migration-timeout"
        ) from exc
    except BaseException:  # Ctrl-C, SIGTERM: its own session does not get them
        _kill_group(process)
        raise
    finally:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    if process.returncode != 0:
        lines = [line.strip() for line in (stderr or stdout).splitlines()]
        detail = next((line for line in reversed(lines) if line), f"exit {process.returncode}")
        raise MigrationError(f"migration command {command!r} failed: {detail}")
    return Migration(name=command, command=command, transactional=False)
