"""A replay connection's startup: the captured session's parameters and our timeouts.

The StartupMessage's parameters (PostgreSQL docs 55.7, StartupMessage) are replayed:
``application_name`` and ``client_encoding`` as libpq connection keywords (libpq sends
them itself), every other run-time parameter (DateStyle, search_path, TimeZone,
extra_float_digits ...) as ``-c name=value`` in ``options``. ``database`` is the
target's, not production's. The run's ``statement_timeout`` and ``lock_timeout`` come
last, so they win over a captured value.

``user`` is the session's captured role (or the one role ``--replay-role`` names): the
replay logs in as that role, without a password, so that session_user, current_user, the
role's own settings, its privileges and row-level security policies are the ones
production had, and stay so through whatever the session sends (``RESET ALL``,
``DISCARD ALL``, ``RESET SESSION AUTHORIZATION``, ``SET ROLE NONE``). Connecting as the URL's
superuser and then ``SET SESSION AUTHORIZATION`` would lose the role on a captured
``DISCARD ALL`` (it resets the session authorization), skip the role's settings (applied
only at login) and cost one more round trip per connection (0.15 ms on the embedded
server, against 6 to 8 ms for the connection itself: the choice is for fidelity, not
speed). It needs a server that lets the run log in as the role without a password: the
throwaway scratch server trusts local connections; on any other target
:func:`check_logins` tries each role once before anything is replayed. With
``--as-connected-user`` every session runs as the URL's user, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import pq
from psycopg.conninfo import make_conninfo

from replay.errors import SetupError
from replay.model.records import Session
from replay.targets.conninfo import parse_conninfo, user_of
from replay.targets.target import Target

# Keys that are not run-time parameters, or that libpq sends itself.
NOT_REPLAYED = frozenset(
    {"user", "database", "replication", "options", "application_name", "client_encoding"}
)
WATCHDOG_GRACE = 5.0
CONNECT_TIMEOUT = "10"


@dataclass(frozen=True)
class Timeouts:
    """Server-side timeouts per replay connection, in seconds (0 = none), and the role
    it logs in as: ``role`` for every session if given, else each session's captured
    role, unless ``captured_role`` is False (then the target URL's user)."""

    statement: float = 30.0
    lock: float = 5.0
    role: str = ""
    captured_role: bool = True

    def role_of(self, session: Session | None) -> str:
        """The role ``session`` runs as; "" for the target URL's own user."""
        if self.role:
            return self.role
        if self.captured_role and session is not None:
            return session.user
        return ""

    @property
    def watchdog(self) -> float | None:
        """When the client gives up waiting on a statement, if ever."""
        if self.statement <= 0:
            return None
        return self.statement + WATCHDOG_GRACE


def _escape_option(value: str) -> str:
    # libpq splits ``options`` on unescaped spaces; backslash escapes (docs 32.1.2).
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def startup_conninfo(
    conninfo: str, session: Session | None, timeouts: Timeouts, *, parameters: bool = True
) -> str:
    """The libpq connection string replaying ``session`` on the target at ``conninfo``;
    without its captured run-time ``parameters`` if asked (its role is kept)."""
    params = parse_conninfo(conninfo)
    role = timeouts.role_of(session)
    if role and role != user_of(conninfo):
        params["user"] = role
        # The URL's password is its own user's: never offered for another role.
        params.pop("password", None)
    options = [params["options"]] if params.get("options") else []
    if session is not None and parameters:
        captured = session.parameters
        application_name = session.application_name or captured.get("application_name", "")
        if application_name:
            params["application_name"] = application_name
        if captured.get("client_encoding"):
            params["client_encoding"] = captured["client_encoding"]
        if captured.get("options"):
            options.append(captured["options"])
        for name, value in sorted(captured.items()):
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
    attempts.append(startup_conninfo(conninfo, session, timeouts, parameters=False))
    error = ""
    for attempt in attempts:
        pgconn = pq.PGconn.connect(attempt.encode("utf-8", "surrogateescape"))
        if pgconn.status == pq.ConnStatus.OK:
            pgconn.notice_handler = ignore_notice
            return pgconn, attempts[0], ""
        error = one_line(pgconn.error_message)
        pgconn.finish()
    return None, attempts[0], error


def check_logins(targets: Iterable[Target], roles: Iterable[str], timeouts: Timeouts) -> None:
    """Log in once as each of ``roles`` on each target, as the replay will: a one-line
    SetupError naming the first that fails, before anything is replayed."""
    wanted = sorted({role for role in roles if role})
    for target in targets:
        for role in wanted:
            session = Session(id="", start=0.0, user=role)
            pgconn, _startup, error = open_connection(target.conninfo, session, timeouts)
            if pgconn is None:
                raise SetupError(
                    f"cannot replay as role {role} on the {target.name} {target.display}: "
                    f"{error} (the replay logs in as each captured role without a password; "
                    "or give --replay-role NAME or --as-connected-user)"
                )
            pgconn.finish()
