"""Connection strings and ``HOST:PORT`` addresses: every parse of them, in one place.

Connection strings (``key=value`` or ``postgresql://`` URLs) are read and written with
:mod:`psycopg.conninfo`, so they mean what libpq makes of them. Addresses of the form
``HOST:PORT`` (the capture's ``--upstream`` and ``--listen``, its header's ``upstream``)
put an IPv6 host in brackets, ``[::1]:5432``, as URLs do.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replay.errors import BadInput

DEFAULT_PORT = 5432


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """The parameters of ``conninfo`` as strings; BadInput if libpq cannot read it."""
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


def split_password(conninfo: str) -> tuple[str, dict[str, str]]:
    """The conninfo without password, and the environment that supplies it (not argv)."""
    params = parse_conninfo(conninfo)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return make_conninfo("", **params), env


def with_database(conninfo: str, dbname: str) -> str:
    """``conninfo`` pointed at another database of the same server."""
    return make_conninfo(conninfo, dbname=dbname)


def split_address(value: str, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) into its parts; BadInput when malformed.

    The port is what follows the last colon, so an unbracketed ``::1:5432`` still reads
    as host ``::1``, as it always has."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"{what} must be HOST:PORT, not {value!r}")
    return host, int(port)


def join_address(host: str, port: int) -> str:
    """``HOST:PORT``, an IPv6 host in brackets: what :func:`split_address` reads."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_of(conninfo: str, default_host: str = "127.0.0.1") -> str:
    """The ``HOST:PORT`` of the (first) server ``conninfo`` names."""
    params = parse_conninfo(conninfo)
    host = (params.get("host") or params.get("hostaddr") or default_host).split(",")[0]
    port = (params.get("port") or str(DEFAULT_PORT)).split(",")[0]
    if not port.isdigit():
        raise BadInput(f"bad port in {strip_password(conninfo)}")
    return join_address(host, int(port))


def to_url(conninfo: str) -> str:
    """``conninfo`` as a ``postgresql://`` URL (for tools that only read DATABASE_URL)."""
    params = parse_conninfo(conninfo)
    user = quote(params.get("user", ""), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = params.get("host", "localhost")
    if host.startswith("/"):
        netloc, query = auth, f"?host={quote(host, safe='')}"
    else:
        netloc, query = f"{auth}{'[' + host + ']' if ':' in host else host}", ""
    port = f":{params['port']}" if "port" in params and not host.startswith("/") else ""
    if host.startswith("/") and "port" in params:
        query += f"&port={params['port']}"
    return f"postgresql://{netloc}{port}/{quote(params.get('dbname', ''), safe='')}{query}"


@dataclass(frozen=True)
class Endpoint:
    """The server(s) and database a conninfo reaches, libpq's defaults filled in."""

    hosts: tuple[str, ...]
    port: int
    dbname: str

    @classmethod
    def of(cls, conninfo: str) -> Endpoint:
        params = parse_conninfo(conninfo)
        hosts = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST", "")
        port = params.get("port") or os.environ.get("PGPORT") or str(DEFAULT_PORT)
        dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user_of(conninfo)
        try:
            port_number = int(port.split(",")[0])
        except ValueError as exc:
            raise BadInput(f"bad port in {strip_password(conninfo)}") from exc
        return cls(tuple(hosts.split(",")), port_number, dbname)


def user_of(conninfo: str) -> str:
    """The role a conninfo logs in as: its ``user``, else libpq's default (``PGUSER``,
    else the operating system user)."""
    return parse_conninfo(conninfo).get("user") or os.environ.get("PGUSER") or _os_user()


def _os_user() -> str:
    with contextlib.suppress(KeyError, ImportError):
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    return ""
