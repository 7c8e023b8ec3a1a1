"""The source's roles, made again on the scratch server before the clone is restored.

The clone keeps owners, GRANTs, default privileges and row-level security policies
(:mod:`replay.targets.clone`), so the roles they name must exist first, and each session
is replayed as its captured role (:mod:`replay.engine.startup`). The roles are read from
the source's catalogs (``pg_roles``, ``pg_auth_members``, ``pg_db_role_setting``), which
any user may read and which never show a password, and made again with what changes what
a session may do:

- ``LOGIN``, ``INHERIT``, ``CREATEDB``, ``CREATEROLE``, ``BYPASSRLS``, memberships (with
  their ADMIN, INHERIT and SET options where both servers have them) and the role's own
  settings (``ALTER ROLE ... SET``, for every database).
- Never a password: the replay logs in as the role without one (the throwaway server
  trusts local connections).
- ``SUPERUSER`` only on the run's own throwaway server. On a shared ``--scratch`` a
  source superuser is made without it, and the run says so: a run must not leave new
  superusers on a server others use.
- Not ``REPLICATION`` (the replay never streams), nor ``CONNECTION LIMIT`` (the targets
  share the scratch server's limit three times over), nor ``VALID UNTIL`` (it limits only
  the password).

A role that already exists on the scratch server is reused as it is and never altered,
and no membership is granted to it. The roles made are left on the server: roles belong
to the whole cluster, and another run may be using them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from replay.errors import SetupError
from replay.targets.conninfo import strip_password

__all__ = [
    "Membership",
    "SourceRole",
    "clone_roles",
    "create_statements",
    "missing_roles",
    "read_roles",
]

Notify = Callable[[str], None]
Connection = psycopg.Connection[tuple[object, ...]]

# Settings whose value is a list of names, each quoted on its own (as pg_dumpall does
# for GUC_LIST_QUOTE settings); any other setting's value is one literal.
LIST_SETTINGS = frozenset(
    {
        "search_path",
        "temp_tablespaces",
        "local_preload_libraries",
        "session_preload_libraries",
        "shared_preload_libraries",
    }
)
# pg_auth_members' membership options, from PostgreSQL 16 on.
MEMBERSHIP_OPTIONS = 160000


@dataclass(frozen=True)
class SourceRole:
    """A role of the source, with the attributes the replay keeps."""

    name: str
    login: bool = False
    inherit: bool = True
    createdb: bool = False
    createrole: bool = False
    bypassrls: bool = False
    superuser: bool = False
    settings: tuple[str, ...] = field(default=())  # "name=value", as pg_db_role_setting


@dataclass(frozen=True)
class Membership:
    """``member`` is a member of ``role``; ``inherit``/``set`` are None before 16."""

    role: str
    member: str
    admin: bool = False
    inherit: bool | None = None
    set: bool | None = None


def read_roles(conn: Connection) -> tuple[list[SourceRole], list[Membership]]:
    """The source's roles (not the predefined ``pg_*`` ones) and memberships."""
    rows = conn.execute(
        """
        SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolcreatedb, r.rolcreaterole,
               r.rolbypassrls, r.rolsuper,
               coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                         WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}')
        FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY r.rolname
        """
    ).fetchall()
    roles = [
        SourceRole(
            name=str(r[0]),
            login=bool(r[1]),
            inherit=bool(r[2]),
            createdb=bool(r[3]),
            createrole=bool(r[4]),
            bypassrls=bool(r[5]),
            superuser=bool(r[6]),
            settings=tuple(str(s) for s in r[7]),  # type: ignore[attr-defined]
        )
        for r in rows
    ]
    options = conn.info.server_version >= MEMBERSHIP_OPTIONS
    extra = ", m.inherit_option, m.set_option" if options else ""
    members = conn.execute(
        f"""
        SELECT g.rolname, u.rolname, m.admin_option{extra}
        FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
        ORDER BY 1, 2
        """
    ).fetchall()
    memberships = [
        Membership(
            str(m[0]),
            str(m[1]),
            bool(m[2]),
            bool(m[3]) if options else None,
            bool(m[4]) if options else None,
        )
        for m in members
    ]
    return roles, memberships


def _split_list(value: str) -> list[str]:
    """A list setting's stored value into its names (double quotes keep commas)."""
    names: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char == "," and not quoted:
            names.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    names.append("".join(current).strip())
    return [name[1:-1].replace('""', '"') if name.startswith('"') else name for name in names]


def _setting(role: str, setting: str) -> sql.Composed:
    name, _, value = setting.partition("=")
    values = _split_list(value) if name.lower() in LIST_SETTINGS else [value]
    return sql.SQL("ALTER ROLE {} SET {} TO {}").format(
        sql.Identifier(role),
        sql.Identifier(name),
        sql.SQL(", ").join(sql.Literal(v) for v in values),
    )


def create_statements(role: SourceRole, *, superuser: bool) -> list[sql.Composed]:
    """CREATE ROLE (without a password) and its settings; ``superuser``: whether a
    source superuser may be one here."""
    flags = [
        ("LOGIN", role.login),
        ("CREATEDB", role.createdb),
        ("CREATEROLE", role.createrole),
        ("BYPASSRLS", role.bypassrls),
        ("SUPERUSER", role.superuser and superuser),
    ]
    words = [word for word, wanted in flags if wanted]
    if not role.inherit:
        words.append("NOINHERIT")
    create = sql.SQL("CREATE ROLE {}{}").format(
        sql.Identifier(role.name), sql.SQL("".join(f" {w}" for w in words))
    )
    return [create, *(_setting(role.name, s) for s in role.settings)]


def grant_statement(membership: Membership, *, options: bool) -> sql.Composed:
    """GRANT role TO member, with the membership's options (``options``: 16 or later)."""
    grant = sql.SQL("GRANT {} TO {}").format(
        sql.Identifier(membership.role), sql.Identifier(membership.member)
    )
    if options and membership.inherit is not None and membership.set is not None:
        chosen = {"ADMIN": membership.admin, "INHERIT": membership.inherit, "SET": membership.set}
        return grant + sql.SQL(" WITH " + ", ".join(f"{k} {v}".upper() for k, v in chosen.items()))
    return grant + sql.SQL(" WITH ADMIN OPTION" if membership.admin else "")


def existing_roles(conn: Connection, names: Iterable[str]) -> set[str]:
    rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names),))
    return {str(r[0]) for r in rows}


def _one_line(exc: psycopg.Error) -> str:
    message = exc.diag.message_primary or str(exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__


def clone_roles(source: str, scratch: str, *, private: bool, notify: Notify) -> list[str]:
    """Make the source's roles that the scratch server lacks; the names made."""
    try:
        with psycopg.connect(source, connect_timeout=10) as conn:
            roles, memberships = read_roles(conn)
    except psycopg.Error as exc:
        raise SetupError(
            f"cannot read the roles of {strip_password(source)}: {_one_line(exc)}"
        ) from exc
    try:
        admin = psycopg.connect(scratch, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise SetupError(
            f"cannot connect to the scratch server {strip_password(scratch)}: {_one_line(exc)}"
        ) from exc
    with admin:
        there = existing_roles(admin, [r.name for r in roles])
        made: list[str] = []
        for role in roles:
            if role.name in there:
                continue
            if role.superuser and not private:
                notify(f"role {role.name} is made without SUPERUSER on the shared scratch server")
            for statement in create_statements(role, superuser=private):
                try:
                    admin.execute(statement)
                except psycopg.errors.DuplicateObject:
                    break  # made meanwhile by another run: reused, never altered
                except psycopg.Error as exc:
                    raise SetupError(
                        f"cannot create role {role.name} on the scratch server: {_one_line(exc)}"
                    ) from exc
            else:
                made.append(role.name)
        known = there | set(made) | existing_roles(admin, [m.role for m in memberships])
        options = admin.info.server_version >= MEMBERSHIP_OPTIONS
        for membership in memberships:
            if membership.member not in made or membership.role not in known:
                continue
            try:
                admin.execute(grant_statement(membership, options=options))
            except psycopg.Error as exc:
                raise SetupError(
                    f"cannot grant role {membership.role} to {membership.member} on the "
                    f"scratch server: {_one_line(exc)}"
                ) from exc
    if made:
        notify(f"made {len(made)} roles of the source on the scratch server")
    return made


def missing_roles(conninfo: str, names: Iterable[str]) -> list[str]:
    """Which of ``names`` the server at ``conninfo`` has no role for, sorted."""
    wanted = sorted(set(names))
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            found = existing_roles(conn, wanted)
    except psycopg.Error as exc:
        raise SetupError(
            f"cannot read the roles of {strip_password(conninfo)}: {_one_line(exc)}"
        ) from exc
    return [n for n in wanted if n not in found]
