"""Which databases replay may write to: never the capture's source, never --source.

Replay writes to its targets, so before anything is sent :func:`check_safe` refuses a
target on the same server as the capture's ``upstream`` (loopback spellings and names
resolving to one address count as the same) whose database one of the captured
sessions used, and a target that is the ``--source`` database itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replay.errors import BadInput, UnsafeTarget


@dataclass(frozen=True)
class Target:
    """A database the capture is replayed against; ``created`` if this run made it."""

    name: str
    conninfo: str
    created: bool = False

    @property
    def display(self) -> str:
        return strip_password(self.conninfo)


def parse_conninfo(conninfo: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        raise BadInput(f"not a PostgreSQL connection string: {strip_password(conninfo)}") from exc


def strip_password(conninfo: str) -> str:
    """``conninfo`` without its password, for logs and run.json."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    params.pop("password", None)
    return make_conninfo("", **params)


_LOOPBACK_NAMES = {"", "localhost", "localhost.localdomain"}


def _is_loopback(host: str) -> bool:
    if host.startswith("/") or host.lower() in _LOOPBACK_NAMES:
        return True  # a Unix socket is this machine's server
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _addresses(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return set()


def same_host(a: str, b: str) -> bool:
    """Whether two host names reach the same machine (loopback spellings are equal)."""
    a, b = a.strip("[]").lower(), b.strip("[]").lower()
    if a == b or (_is_loopback(a) and _is_loopback(b)):
        return True
    resolved_a, resolved_b = _addresses(a), _addresses(b)
    return bool(resolved_a & resolved_b)


@dataclass(frozen=True)
class Endpoint:
    hosts: tuple[str, ...]
    port: int
    dbname: str

    @classmethod
    def of(cls, conninfo: str) -> Endpoint:
        params = parse_conninfo(conninfo)
        hosts = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST", "")
        port = params.get("port") or os.environ.get("PGPORT") or "5432"
        user = params.get("user") or os.environ.get("PGUSER") or _os_user()
        dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
        try:
            port_number = int(port.split(",")[0])
        except ValueError as exc:
            raise BadInput(f"bad port in {strip_password(conninfo)}") from exc
        return cls(tuple(hosts.split(",")), port_number, dbname)

    def same_server(self, host: str, port: int) -> bool:
        return self.port == port and any(same_host(h, host) for h in self.hosts)


def _os_user() -> str:
    with contextlib.suppress(KeyError, ImportError):
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    return ""


def parse_upstream(upstream: str) -> tuple[str, int]:
    host, _, port = upstream.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError as exc:
        raise BadInput(f"capture header has a bad upstream {upstream!r}") from exc


def check_safe(
    targets: Iterable[Target],
    *,
    upstream: str | None,
    captured_databases: Iterable[str],
    source: str | None = None,
) -> None:
    """Raise UnsafeTarget for a target that is the capture's source or ``source``."""
    databases = set(captured_databases)
    origin = parse_upstream(upstream) if upstream else None
    source_end = Endpoint.of(source) if source else None
    for target in targets:
        end = Endpoint.of(target.conninfo)
        if origin and end.same_server(*origin) and end.dbname in databases:
            raise UnsafeTarget(
                f"refusing {target.name} target {target.display}: it is the capture's source "
                f"(upstream {upstream}, database {end.dbname!r}); replay writes to its targets"
            )
        if (
            source_end
            and end.dbname == source_end.dbname
            and any(end.same_server(h, source_end.port) for h in source_end.hosts)
        ):
            raise UnsafeTarget(
                f"refusing {target.name} target {target.display}: it is the --source database"
            )
