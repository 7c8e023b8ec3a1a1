"""A replay connection's startup: the captured session's parameters and our timeouts.

The StartupMessage's parameters (PostgreSQL docs 55.7, StartupMessage) are replayed:
``application_name`` and ``client_encoding`` as libpq connection keywords (libpq sends
them itself), every other run-time parameter (DateStyle, search_path, TimeZone,
extra_float_digits ...) as ``-c name=value`` in ``options``. ``user`` and ``database``
are the target's, not production's. The run's ``statement_timeout`` and
``lock_timeout`` come last, so they win over a captured value.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import pq
from psycopg.conninfo import make_conninfo

from replay.model.records import Session
from replay.targets.conninfo import parse_conninfo

# Keys that are not run-time parameters, or that libpq sends itself.
NOT_REPLAYED = frozenset(
    {"user", "database", "replication", "options", "application_name", "client_encoding"}
)
WATCHDOG_GRACE = 5.0
CONNECT_TIMEOUT = "10"


@dataclass(frozen=True)
class Timeouts:
    """Server-side timeouts per replay connection, in seconds (0 = none)."""

    statement: float = 30.0
    lock: float = 5.0

    @property
    def watchdog(self) -> float | None:
        """When the client gives up waiting on a statement, if ever."""
        if self.statement <= 0:
            return None
        return self.statement + WATCHDOG_GRACE


def _escape_option(value: str) -> str:
    # libpq splits ``options`` on unescaped spaces; backslash escapes (docs 32.1.2).
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def startup_conninfo(conninfo: str, session: Session | None, timeouts: Timeouts) -> str:
    """The libpq connection string replaying ``session`` on the target at ``conninfo``."""
    params = parse_conninfo(conninfo)
    options = [params["options"]] if params.get("options") else []
    if session is not None:
        parameters = session.parameters
        application_name = session.application_name or parameters.get("application_name", "")
        if application_name:
            params["application_name"] = application_name
        if parameters.get("client_encoding"):
            params["client_encoding"] = parameters["client_encoding"]
        if parameters.get("options"):
            options.append(parameters["options"])
        for name, value in sorted(parameters.items()):
            if name not in NOT_REPLAYED and not name.startswith("_pq_."):
                options.append(f"-c {name}={_escape_option(value)}")
    options.append(f"-c statement_timeout={int(timeouts.statement * 1000)}")
    options.append(f"-c lock_timeout={int(timeouts.lock * 1000)}")
    params["options"] = " ".join(options)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)
    return make_conninfo("", **params)


def ignore_notice(result: pq.abc.PGresult) -> None:
    """Notices (e.g. 'there is no transaction in progress') are not outcomes."""


def one_line(message: bytes) -> str:
    lines = [line for line in message.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "cannot connect"


def open_connection(
    conninfo: str, session: Session | None, timeouts: Timeouts
) -> tuple[pq.abc.PGconn | None, str, str]:
    """Connect with the session's startup parameters, else without them (a parameter
    the target does not know must not cost the whole session): the connection, the
    startup it was asked for, and the error when there is no connection."""
    attempts = [startup_conninfo(conninfo, session, timeouts)]
    attempts.append(startup_conninfo(conninfo, None, timeouts))
    error = ""
    for attempt in attempts:
        pgconn = pq.PGconn.connect(attempt.encode("utf-8", "surrogateescape"))
        if pgconn.status == pq.ConnStatus.OK:
            pgconn.notice_handler = ignore_notice
            return pgconn, attempts[0], ""
        error = one_line(pgconn.error_message)
        pgconn.finish()
    return None, attempts[0], error
