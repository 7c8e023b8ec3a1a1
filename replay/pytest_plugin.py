"""pytest plugin: "a test that ensures database migrations are backward compatible".

With ``--replay-capture`` it replays the capture against a baseline and a migrated
candidate (the library behind ``replay run``) and turns every query class of the
capture into a test item, named by its fingerprint and example SQL. An item fails
when its class's verdict is at or above ``--replay-fail-on``, with the baseline and
candidate outcomes and the blamed migration in the failure::

    pytest --replay-capture captures/ci --replay-source "$STAGING_URL" \\
           --replay-migrations migrations/

Every option also reads an ini key of the same name with underscores
(``replay_capture = captures/ci`` in ``pytest.ini``). Without a capture the plugin
does nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

OPTIONS: dict[str, str] = {
    "capture": "capture folder to replay (turns the plugin on)",
    "source": "database to clone into baseline and candidate (only read)",
    "scratch": "server for the clones (default: a throwaway embedded PostgreSQL)",
    "baseline": "your own baseline database (instead of --replay-source)",
    "candidate": "your own migrated candidate database",
    "migrations": "folder of *.sql migrations applied to the candidate",
    "migrate_cmd": "command that migrates $DATABASE_URL (alembic, dbmate ...)",
    "fail_on": "verdict level at which a query class fails (default: fails)",
    "out": "report folder (default: a temporary one)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shadow-replay", "replay captured traffic against migrations")
    for name, help_text in OPTIONS.items():
        flag = "--replay-" + name.replace("_", "-")
        group.addoption(flag, dest=f"replay_{name}", default=None, help=help_text)
        parser.addini(f"replay_{name}", help_text, default=None)


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(f"replay_{name}")
    if value is None:
        value = config.getini(f"replay_{name}")
    return str(value) if value else None


class MigrationBreaksQueries(Exception):
    """A query class whose verdict is at or above the fail-on level."""


class QueryClassItem(pytest.Item):
    """One query class of the capture, judged by the replay."""

    def __init__(self, *, query_class: Any, fail_on: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query_class = query_class
        self.fail_on = fail_on

    def runtest(self) -> None:
        if self.query_class.verdict.at_or_above(self.fail_on):
            raise MigrationBreaksQueries(self.query_class.verdict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if not isinstance(excinfo.value, MigrationBreaksQueries):
            return str(super().repr_failure(excinfo))
        from replay.report.words import blame_text, finding_text, outcome_text

        qc = self.query_class
        return "\n".join(
            [
                f"{qc.verdict}: {qc.count} statements of this class",
                f"  sql:       {qc.sql}",
                f"  baseline:  {outcome_text(qc.baseline)}",
                f"  candidate: {outcome_text(qc.candidate)}",
                f"  finding:   {finding_text(qc)}",
                f"  blame:     {blame_text(qc.blame)}",
            ]
        )

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


def _item_name(query_class: Any) -> str:
    sql = " ".join(str(query_class.sql).split())
    return f"{query_class.fingerprint}: {sql[:80]}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    capture = _option(config, "capture")
    if not capture:
        return
    from replay.errors import ReplayError
    from replay.run import RunOptions, run_replay

    out = _option(config, "out") or tempfile.mkdtemp(prefix="replay-pytest-")
    fail_on = _option(config, "fail_on") or "fails"
    migrations = _option(config, "migrations")
    options = RunOptions(
        capture=Path(capture),
        out=Path(out),
        source=_option(config, "source"),
        scratch=_option(config, "scratch"),
        baseline=_option(config, "baseline"),
        candidate=_option(config, "candidate"),
        migrations=Path(migrations) if migrations else None,
        migrate_cmd=_option(config, "migrate_cmd"),
        fail_on=fail_on,
    )
    try:
        result = run_replay(options)
    except ReplayError as exc:
        raise pytest.UsageError(f"shadow-replay: {exc}") from None
    for query_class in result.findings.classes:
        items.append(
            QueryClassItem.from_parent(
                session,
                name=_item_name(query_class),
                query_class=query_class,
                fail_on=fail_on,
                path=Path(capture).resolve(),
                nodeid=f"replay::{_item_name(query_class)}",
            )
        )
