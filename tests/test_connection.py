"""The rules both replay connections share (replay.engine.connection), checked on each:
pure units, with a stand-in for libpq's connection."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from psycopg import pq

from replay.engine.connection import Connection, ReplayConnection
from replay.engine.pipeline import PipelinedConnection
from replay.engine.responses import Request
from replay.engine.startup import WATCHDOG_GRACE, Timeouts, startup_conninfo
from replay.engine.target import TargetConnection
from replay.model.records import Session
from replay.targets.target import Target

TARGET = Target("baseline", "host=db.invalid dbname=app")
SESSION = Session(id="s", start=0.0)
_STATUS = {"I": pq.TransactionStatus.IDLE, "T": pq.TransactionStatus.INTRANS}


@dataclass
class _Result:
    status: pq.ExecStatus = pq.ExecStatus.COMMAND_OK


@dataclass
class FakePGconn:
    """What the shared rules ask of libpq's connection."""

    transaction_status: pq.TransactionStatus = pq.TransactionStatus.IDLE
    status: pq.ConnStatus = pq.ConnStatus.OK
    socket: int = 99
    sent: list[bytes] = field(default_factory=list)
    cancels: int = 0
    finished: bool = False

    def exec_(self, command: bytes) -> _Result:
        self.sent.append(command)
        return _Result()

    def get_cancel(self) -> FakePGconn:
        return self

    def cancel(self) -> None:
        self.cancels += 1

    def finish(self) -> None:
        self.finished = True


def connected(kind: type[ReplayConnection], tx: str = "I") -> tuple[ReplayConnection, FakePGconn]:
    connection = kind(TARGET, Timeouts(statement=1.0))
    pgconn = FakePGconn(_STATUS[tx])
    connection.pgconn = pgconn  # type: ignore[assignment]
    connection.startup = startup_conninfo(TARGET.conninfo, SESSION, connection.timeouts)
    if isinstance(connection, PipelinedConnection):
        connection._opened()
        connection.tx_status = tx
    return connection, pgconn


def sent_one(connection: ReplayConnection, now: float) -> None:
    """A statement is in flight since ``now`` (without sending anything)."""
    if isinstance(connection, PipelinedConnection):
        connection._reader.add(Request(b""), now)
    else:
        assert isinstance(connection, TargetConnection)
        connection.done = connection._reported = False
    connection._waiting_since = now


KINDS = [TargetConnection, PipelinedConnection]


@pytest.mark.parametrize("kind", KINDS)
def test_both_are_connections(kind: type[ReplayConnection]) -> None:
    connection: Connection = kind(TARGET)  # what a Lane holds
    assert not connection.connected and connection.socket == -1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("tx", "commands"), [("I", [b"DISCARD ALL"]), ("T", [b"ROLLBACK", b"DISCARD ALL"])]
)
def test_the_next_session_reuses_a_clean_connection(
    kind: type[ReplayConnection], tx: str, commands: list[bytes]
) -> None:
    connection, pgconn = connected(kind, tx)
    connection.prepared["st"] = ("SELECT 1", ())
    assert connection.begin(SESSION)
    assert pgconn.sent == commands and not connection.prepared
    assert connection.pgconn is pgconn


@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_with_a_statement_in_flight_is_not_reused(
    kind: type[ReplayConnection], monkeypatch
) -> None:
    connection, pgconn = connected(kind)
    sent_one(connection, 0.0)
    pgconn.transaction_status = pq.TransactionStatus.ACTIVE  # as libpq says it then
    reconnects: list[Session] = []
    monkeypatch.setattr(connection, "connect", lambda session: reconnects.append(session))
    connection.begin(SESSION)
    assert reconnects == [SESSION] and pgconn.sent == []


@pytest.mark.parametrize("kind", KINDS)
def test_the_watchdog_cancels_then_gives_up(kind: type[ReplayConnection]) -> None:
    connection, pgconn = connected(kind)
    watchdog = connection.timeouts.watchdog
    assert watchdog is not None
    sent_one(connection, 100.0)
    connection.check_deadline(100.0 + watchdog - 0.1)
    assert pgconn.cancels == 0
    connection.check_deadline(100.0 + watchdog)
    assert pgconn.cancels == 1
    connection.check_deadline(100.0 + watchdog + WATCHDOG_GRACE - 0.1)
    assert pgconn.cancels == 1 and connection.pgconn is pgconn
    connection.check_deadline(100.0 + watchdog + WATCHDOG_GRACE)
    assert pgconn.finished and connection.pgconn is None
    [answer] = connection.poll()
    assert answer.lost
    assert "even to a cancel" in (answer.outcomes[-1].message or "")


@pytest.mark.parametrize("kind", KINDS)
def test_the_watchdog_leaves_idle_connections_alone(kind: type[ReplayConnection]) -> None:
    connection, pgconn = connected(kind)
    connection.check_deadline(1e9)
    connection.cancel()
    assert pgconn.cancels == 0 and connection.pgconn is pgconn
