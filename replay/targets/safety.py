"""Which databases replay may write to: never the capture's source, never --source.

Replay writes to its targets, so before anything is sent :func:`check_safe` refuses a
target on the same server as the capture's ``upstream`` (loopback spellings and names
resolving to one address count as the same) whose database one of the captured
sessions used, and a target that is the ``--source`` database itself.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from replay.errors import UnsafeTarget
from replay.targets.conninfo import Endpoint, split_address
from replay.targets.target import Target

__all__ = ["check_safe", "parse_upstream", "same_host", "same_server"]


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


def same_server(end: Endpoint, host: str, port: int) -> bool:
    """Whether ``end`` is the server at ``host:port``."""
    return end.port == port and any(same_host(h, host) for h in end.hosts)


def parse_upstream(upstream: str) -> tuple[str, int]:
    """The capture header's ``upstream`` as (host, port)."""
    return split_address(upstream, "the capture header's upstream")


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
        if origin and same_server(end, *origin) and end.dbname in databases:
            raise UnsafeTarget(
                f"refusing {target.name} target {target.display}: it is the capture's source "
                f"(upstream {upstream}, database {end.dbname!r}); replay writes to its targets"
            )
        if (
            source_end
            and end.dbname == source_end.dbname
            and any(same_server(end, h, source_end.port) for h in source_end.hosts)
        ):
            raise UnsafeTarget(
                f"refusing {target.name} target {target.display}: it is the --source database"
            )
