"""Run a migration tool through the capture proxy, to know the statements it ran.

``--migrate-cmd`` runs any tool (alembic, django, dbmate, flyway, sqitch ...), whose
migrations are not files we can split. Its connection to the candidate goes through a
``replay capture`` proxy instead, so what it executed is known statement by statement
and blame can bisect it like a migration file, whatever the tool.

Kept: every statement that succeeded, in the order the server ran them, except what
cannot change the schema or data (plain SELECTs, SHOW) and transaction control (the
probes apply statements one by one). Statements sent with bound parameters cannot be
re-applied as text and are left out; the migration's own bookkeeping (a version table
update) usually is such a statement, and blame does not need it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from psycopg.conninfo import make_conninfo

from replay.capture.format import read_records
from replay.capture.process import CaptureProcess
from replay.model.records import Statement
from replay.sql.fingerprint import statement_kind
from replay.targets import migrate
from replay.targets.conninfo import address_of

NOT_REPLAYED = frozenset({"SelectStmt", "VariableShowStmt", "TransactionStmt", "Empty"})


def ran_statements(capture: Path) -> tuple[str, ...]:
    """The statements of a captured migration run worth re-applying, in server order."""
    ran = [r for r in read_records(capture) if isinstance(r, Statement)]
    ran.sort(key=lambda s: (s.start, s.seq))
    return tuple(
        s.sql.strip()
        for s in ran
        if s.error is None
        and not s.params
        and s.sql.strip()
        and statement_kind(s.sql) not in NOT_REPLAYED
    )


def run_recorded(conninfo: str, command: str, *, timeout: float | None = None) -> migrate.Migration:
    """Run ``command`` against the candidate through a capture proxy; MigrationError if
    the command fails. The migration it returns lists the statements it ran."""
    upstream = address_of(conninfo)
    with tempfile.TemporaryDirectory(prefix="replay-migrate-cmd-") as folder:
        capture = Path(folder) / "capture"
        with CaptureProcess(upstream, capture) as proxy:
            proxied = make_conninfo(conninfo, host="127.0.0.1", port=proxy.port)
            migrate.run_command(proxied, command, timeout=timeout)
        statements = ran_statements(capture)
    return migrate.Migration(
        name=command, command=command, statements=statements, transactional=False
    )
