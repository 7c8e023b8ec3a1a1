"""Replay targets: the baseline, candidate and second baseline databases.

Either the user names them (``--baseline/--candidate/--baseline2``: nothing is made or
dropped), or :class:`Clones` makes them from ``--source``: a consistent ``pg_dump -Fc``
(one snapshot) restored into a fresh *baseline* database on the scratch server, then
*candidate* and *baseline2* as ``CREATE DATABASE ... TEMPLATE baseline`` copies. The
wheel's ``pg_dump``/``pg_restore`` are used, so any older source dumps cleanly.

The source's roles are made on the scratch server first (:mod:`replay.targets.roles`),
so the restore keeps owners, GRANTs, default privileges, policies and ENABLE/FORCE ROW
LEVEL SECURITY: a migration that revokes a privilege or hides rows from the
application's role changes what the replay sees, as it would in production.

With ``pristine`` one more copy is made the same way before anything is migrated or
replayed: the template blame's probes are made from (:mod:`replay.blame.probes`), so
the source is dumped once per run. It is dropped with the clones.

Every planned target is checked with :func:`replay.targets.safety.check_safe` before anything
is created or sent.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from replay.errors import BadInput, SetupError
from replay.targets.conninfo import split_password, strip_password, with_database
from replay.targets.roles import clone_roles
from replay.targets.safety import check_safe
from replay.targets.server import EmbeddedServer, tool
from replay.targets.target import Target

__all__ = ["TARGET_NAMES", "Clones", "dump", "dump_and_restore", "restore"]

TARGET_NAMES = ("baseline", "candidate", "baseline2")
Notify = Callable[[str], None]


def _run_tool(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise SetupError(f"{what}: cannot run {args[0]}: {exc.strerror}") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line.lower()]
        detail = (errors or lines or [f"exit {done.returncode}"])[0]
        raise SetupError(f"{what} failed: {detail.strip()}")


def dump(source: str, folder: str, *, schema_only: bool) -> str:
    """``pg_dump -Fc`` of ``source`` into ``folder``: the dump file's path."""
    source_dsn, source_env = split_password(source)
    dumped = str(Path(folder) / "source.dump")
    args = [tool("pg_dump"), "--format=custom", f"--file={dumped}", f"--dbname={source_dsn}"]
    if schema_only:
        args.append("--schema-only")
    _run_tool(args, source_env, f"pg_dump of {strip_password(source)}")
    return dumped


# No tablespaces (the scratch server has none of the source's) and no subscriptions
# (a restored subscription must never reach the publisher).
_RESTORE_OPTIONS = ("--no-tablespaces", "--no-subscriptions", "--no-publications")
# What a newer pg_restore sets at the start of a restore that an older server does not
# know: transaction_timeout is new in PostgreSQL 17.
_NEWER_SETTINGS = re.compile(rb"^SET transaction_timeout = ")
TRANSACTION_TIMEOUT_SINCE = 170000


def restore(dumped: str, dest: str, *, jobs: int = 2, server_version: int | None = None) -> None:
    """``pg_restore`` of a dump into the empty database ``dest``, owners and grants
    included: the roles they name must exist (:func:`replay.targets.roles.clone_roles`).

    The wheel's pg_restore may be newer than the scratch server: for a server older than
    PostgreSQL 17 (``server_version``, as ``server_version_num``) the restore goes as a
    script through psql, without the settings that server does not know."""
    dest_dsn, dest_env = split_password(dest)
    if server_version is not None and server_version < TRANSACTION_TIMEOUT_SINCE:
        _restore_as_script(dumped, dest_dsn, dest_env)
        return
    args = [tool("pg_restore"), *_RESTORE_OPTIONS, f"--jobs={jobs}", f"--dbname={dest_dsn}"]
    _run_tool([*args, dumped], dest_env, "pg_restore into the baseline")


def _restore_as_script(dumped: str, dest_dsn: str, env: dict[str, str]) -> None:
    # Messages go to files: a pipe nobody reads while the data streams could fill and stall.
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        restore = subprocess.Popen(
            [tool("pg_restore"), *_RESTORE_OPTIONS, "--file=-", dumped],
            stdout=subprocess.PIPE, stderr=restore_err, env=env,
        )  # fmt: skip
        psql = subprocess.Popen(
            [tool("psql"), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
             f"--dbname={dest_dsn}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env,
        )  # fmt: skip
        assert restore.stdout is not None and psql.stdin is not None
        # psql may stop on an error (said below), also while the last lines are flushed.
        with contextlib.suppress(BrokenPipeError), restore.stdout, psql.stdin:
            for line in restore.stdout:
                if not _NEWER_SETTINGS.match(line):
                    psql.stdin.write(line)
        restore.wait()
        psql.wait()
        for program, process, err in (
            ("pg_restore", restore, restore_err),
            ("psql", psql, psql_err),
        ):
            if process.returncode != 0:
                err.seek(0)
                lines = [line.strip() for line in err.read().decode(errors="replace").splitlines()]
                detail = next((line for line in lines if line), f"exit {process.returncode}")
                raise SetupError(f"{program} into the baseline failed: {detail}")


def dump_and_restore(source: str, dest: str, *, schema_only: bool, jobs: int = 2) -> None:
    """Copy ``source`` into the empty database ``dest`` (pg_dump -Fc | pg_restore)."""
    with tempfile.TemporaryDirectory(prefix="replay-dump-") as folder:
        restore(dump(source, folder, schema_only=schema_only), dest, jobs=jobs)


def drop_database(admin: psycopg.Connection[Any], name: str) -> None:
    """Drop ``name`` and end the sessions still in it: ``WITH (FORCE)`` from PostgreSQL
    13 on, before that by terminating them first."""
    force = admin.info.server_version >= 130000
    if not force:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    admin.execute(
        sql.SQL("DROP DATABASE IF EXISTS {}{}").format(
            sql.Identifier(name), sql.SQL(" WITH (FORCE)" if force else "")
        )
    )


class Clones:
    """The targets made from ``source`` on a scratch server, dropped on exit unless kept.

    Use as a context manager; ``targets`` is filled in ``__enter__``. Without
    ``scratch`` a throwaway embedded server is started (and left running with ``keep``).
    """

    def __init__(
        self,
        source: str,
        *,
        scratch: str | None = None,
        schema_only: bool = False,
        noise: bool = True,
        keep: bool = False,
        upstream: str | None = None,
        captured_databases: Iterable[str] = (),
        notify: Notify | None = None,
        pristine: bool = False,
    ) -> None:
        self.source = source
        self.scratch = scratch
        self.schema_only = schema_only
        self.names = TARGET_NAMES if noise else TARGET_NAMES[:2]
        self.keep = keep
        self.upstream = upstream
        self.captured_databases = frozenset(captured_databases)
        self.notify = notify or (lambda message: None)
        self.run_id = time.strftime("replay_%Y%m%d_%H%M%S_") + uuid.uuid4().hex[:6]
        self.targets: dict[str, Target] = {}
        self.wants_pristine = pristine
        self.pristine: str | None = None  # the database's name, once made
        self.server: EmbeddedServer | None = None
        self._created: list[str] = []
        self.roles: list[str] = []  # the roles this run made on the scratch server (kept)

    def database_name(self, target: str) -> str:
        return f"{self.run_id}_{target}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        assert self.scratch is not None
        try:
            return psycopg.connect(self.scratch, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise SetupError(
                f"cannot connect to the scratch server {strip_password(self.scratch)}: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from exc

    def __enter__(self) -> Clones:
        planned = [
            Target(name, with_database(self.scratch, self.database_name(name)), True)
            for name in self.names
            if self.scratch
        ]
        check_safe(
            planned,
            upstream=self.upstream,
            captured_databases=self.captured_databases,
            source=self.source,
        )
        try:
            self._make()
        except BaseException:
            self._cleanup()
            raise
        return self

    def _make(self) -> None:
        if self.scratch is None:
            self.notify("starting a throwaway PostgreSQL server")
            self.server = EmbeddedServer().start()
            self.scratch = self.server.url()
        baseline = self.database_name("baseline")
        scratch_version = self._check_versions()
        with tempfile.TemporaryDirectory(prefix="replay-dump-") as folder:
            self.notify("dumping the source")
            dumped = dump(self.source, folder, schema_only=self.schema_only)
            # Before the restore: it gives objects to their owners and grants to roles.
            self.roles = clone_roles(
                self.source, self.scratch, private=self.server is not None, notify=self.notify
            )
            with self._admin() as admin:
                self._create(admin, baseline, "template0")
            self.notify(f"restoring the source into {baseline}")
            restore(dumped, self._dsn(baseline), server_version=scratch_version)
        with self._admin() as admin:
            for name in self.names[1:]:
                self._create(admin, self.database_name(name), baseline)
            if self.wants_pristine:
                self._create(admin, self.database_name("pristine"), baseline)
                self.pristine = self.database_name("pristine")
        self.targets = {
            name: Target(name, self._dsn(self.database_name(name)), True) for name in self.names
        }

    def _check_versions(self) -> int:
        """The scratch server's ``server_version_num``; BadInput, before anything is
        dumped, when it is of an older major version than the source (a clone is made
        on the source's major version or newer)."""
        try:
            with self._admin() as admin:
                scratch = int(str(admin.execute("SHOW server_version_num").fetchone()[0]))  # type: ignore[index]
        except psycopg.Error as exc:
            raise SetupError(f"the scratch server's version: {str(exc).strip()}") from exc
        try:
            with psycopg.connect(self.source, connect_timeout=10) as conn:
                source = int(str(conn.execute("SHOW server_version_num").fetchone()[0]))  # type: ignore[index]
        except psycopg.Error:
            return scratch  # pg_dump says what is wrong with the source
        if scratch // 10000 < source // 10000:
            raise BadInput(
                f"the scratch server is PostgreSQL {scratch // 10000}, older than the source "
                f"(PostgreSQL {source // 10000}): give a --scratch of version "
                f"{source // 10000} or newer"
            )
        return scratch

    def _dsn(self, database: str) -> str:
        assert self.scratch is not None
        return with_database(self.scratch, database)

    def _create(
        self, admin: psycopg.Connection[tuple[object, ...]], db: str, template: str
    ) -> None:
        self._created.append(db)
        try:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(db), sql.Identifier(template)
                )
            )
        except psycopg.Error as exc:
            self._created.remove(db)
            raise SetupError(f"cannot create database {db}: {exc.diag.message_primary}") from exc

    def drop(self) -> None:
        """Drop every database this run created (terminating its leftover sessions)."""
        if not self._created or self.scratch is None:
            return
        with self._admin() as admin:
            for db in reversed(self._created):
                drop_database(admin, db)
        self._created.clear()

    def _cleanup(self) -> None:
        if self.keep:
            for db in self._created:
                self.notify(f"kept database {self._dsn(db)}")
            return
        try:
            if self.server is None:
                self.drop()
        finally:
            if self.server is not None:
                self.server.stop()  # removes the whole cluster with its databases
                self._created.clear()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()
