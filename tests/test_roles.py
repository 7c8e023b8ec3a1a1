"""Roles and privileges as production has them (issue 12, points 1 and 2).

An application role that owns nothing and holds grants sends its traffic through a
real ``replay capture``; ``replay run --source`` clones the roles onto a throwaway
scratch server, keeps the owners, grants and policies, and replays each session as its
captured role. The pure parts (the statements that make a role, the replay's startup)
are tested without a server.
"""

from __future__ import annotations

import json
import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from capture_builder import SessionScript, write_capture
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict

from replay.engine.startup import Timeouts, startup_conninfo
from replay.errors import SetupError
from replay.model.records import Session
from replay.targets.clone import Clones
from replay.targets.roles import Membership, SourceRole, create_statements, grant_statement
from replay.targets.server import EmbeddedServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from replay.cli import cli

# --- pure: the statements that make a role, and the replay's startup ---------------


def _text(statements: list[psycopg.sql.Composed]) -> list[str]:
    return [s.as_string(None) for s in statements]


def test_a_role_is_made_without_password_and_superuser_only_where_allowed() -> None:
    role = SourceRole(
        "shop_app",
        login=True,
        inherit=False,
        bypassrls=True,
        superuser=True,
        settings=("search_path=shop, \"My Schema\"", "work_mem=8MB"),
    )
    shared = _text(create_statements(role, superuser=False))
    assert shared == [
        'CREATE ROLE "shop_app" LOGIN BYPASSRLS NOINHERIT',
        "ALTER ROLE \"shop_app\" SET \"search_path\" TO 'shop', 'My Schema'",
        "ALTER ROLE \"shop_app\" SET \"work_mem\" TO '8MB'",
    ]
    private = _text(create_statements(role, superuser=True))
    assert private[0] == 'CREATE ROLE "shop_app" LOGIN BYPASSRLS SUPERUSER NOINHERIT'
    assert not any("PASSWORD" in s for s in shared + private)


def test_memberships_keep_their_options() -> None:
    old = Membership("readers", "shop_app", admin=True)
    assert grant_statement(old, options=True).as_string(None) == (
        'GRANT "readers" TO "shop_app" WITH ADMIN OPTION'
    )
    new = Membership("readers", "shop_app", admin=False, inherit=False, set=True)
    assert grant_statement(new, options=True).as_string(None) == (
        'GRANT "readers" TO "shop_app" WITH ADMIN FALSE, INHERIT FALSE, SET TRUE'
    )
    assert grant_statement(new, options=False).as_string(None) == 'GRANT "readers" TO "shop_app"'


URL = "postgresql://postgres:secret@127.0.0.1:5432/shop_baseline"


def test_a_session_logs_in_as_its_captured_role_without_the_urls_password() -> None:
    session = Session("s1", 0.0, user="shop_app", parameters={"DateStyle": "ISO"})
    params = conninfo_to_dict(startup_conninfo(URL, session, Timeouts()))
    assert params["user"] == "shop_app" and "password" not in params
    assert "DateStyle=ISO" in params["options"]
    # The fallback without the captured parameters keeps the role.
    bare = conninfo_to_dict(startup_conninfo(URL, session, Timeouts(), parameters=False))
    assert bare["user"] == "shop_app" and "DateStyle" not in bare["options"]


@pytest.mark.parametrize(
    "policy, user, password",
    [
        ({"role": "reporting"}, "reporting", None),
        ({"captured_role": False}, "postgres", "secret"),
    ],
)
def test_one_role_for_every_session_or_the_urls_user(
    policy: dict[str, object], user: str, password: str | None
) -> None:
    session = Session("s1", 0.0, user="shop_app")
    params = conninfo_to_dict(startup_conninfo(URL, session, Timeouts(**policy)))  # type: ignore[arg-type]
    assert params["user"] == user and params.get("password") == password


def test_the_urls_own_user_keeps_its_password() -> None:
    session = Session("s1", 0.0, user="postgres")
    assert conninfo_to_dict(startup_conninfo(URL, session, Timeouts()))["password"] == "secret"


def test_a_url_without_user_logs_in_as_pguser_and_keeps_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # libpq's default user is PGUSER: a session captured as that role is the URL's own.
    monkeypatch.setenv("PGUSER", "shop_app")
    session = Session("s1", 0.0, user="shop_app")
    bare_url = "postgresql://:secret@127.0.0.1:5432/shop_baseline"
    params = conninfo_to_dict(startup_conninfo(bare_url, session, Timeouts()))
    assert params.get("password") == "secret"


# --- end to end: captured as the application's role, replayed as it -----------------

SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 20) i;
CREATE TABLE notes (id int PRIMARY KEY, owner text NOT NULL, body text NOT NULL);
INSERT INTO notes SELECT i, CASE WHEN i % 2 = 0 THEN 'other' ELSE 'app' END, 'note ' || i
FROM generate_series(1, 10) i;
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
CREATE FUNCTION twice(p int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT p * 2';
REVOKE EXECUTE ON FUNCTION twice(int) FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON items, notes, accounts TO {app};
GRANT EXECUTE ON FUNCTION twice(int) TO {app};
"""

ITEM = "SELECT name FROM items WHERE id = $1"
TWICE = "SELECT twice($1)"
NOTES = "SELECT id, body FROM notes ORDER BY id"
NAMED = "SELECT id FROM items WHERE name = $1"


@pytest.fixture
def app_role(pg_server) -> Iterator[str]:
    """A login role of the application's own, on the test server (roles are global)."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
    yield name
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
def source(app_role: str, dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.format(app=app_role))
    return dsn


def application(url: str) -> None:
    """A writer with transactions and upserts, a reader, one with named prepared
    statements, and a session whose pooler resets it (RESET ALL, DISCARD ALL) before it
    reads."""
    with psycopg.connect(url) as writer:
        for i in range(1, 4):
            with writer.transaction():
                writer.execute(
                    "INSERT INTO accounts VALUES (%s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1",
                    (i, 100),
                )
                writer.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (i,))
    with psycopg.connect(url, autocommit=True) as reader:
        for i in (1, 2, 3):
            reader.execute(ITEM.replace("$1", "%s"), (i,))
            reader.execute(TWICE.replace("$1", "%s::int"), (i,))
        reader.execute(NOTES)
    with psycopg.connect(url, autocommit=True) as prepared:  # named prepared statements
        for i in (1, 2, 3):
            prepared.execute(NAMED.replace("$1", "%s"), (f"item {i}",), prepare=True)
    with psycopg.connect(url, autocommit=True) as pooled:
        pooled.execute("RESET ALL")
        pooled.execute("DISCARD ALL")
        pooled.execute("SELECT count(*) FROM items")


@pytest.fixture
def capture(capture_proxy, source: str, app_role: str) -> Path:
    """The application's traffic, captured as its role, through ``replay capture``."""
    database = conninfo_to_dict(source)["dbname"]
    application(capture_proxy.url(str(database), user=app_role))
    capture_proxy.stop()
    return capture_proxy.out


def migrations(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.sql").write_text(text)
    return folder


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def classes(report: Path) -> dict[str, dict]:
    findings = json.loads((report / "findings.json").read_text())
    return {c["sql"]: c for c in findings["classes"]}


def test_revokes_and_a_hiding_policy_are_findings(tmp_path, capture, source, app_role):
    folder = migrations(
        tmp_path,
        **{
            "001_revoke_select": f"REVOKE SELECT ON items FROM {app_role};",
            "002_revoke_execute": f"REVOKE EXECUTE ON FUNCTION twice(int) FROM {app_role};",
            "003_rls": "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;\n"
            f"CREATE POLICY own_notes ON notes FOR SELECT TO {app_role} USING (owner = 'app');",
        },
    )
    report = tmp_path / "report"
    code, output = run(
        "--capture", capture, "--source", source, "--migrations", folder, "--out", report
    )
    assert code == 1, output
    found = classes(report)
    item, twice, named = found[ITEM], found["SELECT twice($1::int)"], found[NAMED]
    for broken in (item, twice, named):
        assert broken["verdict"] == "fails" and broken["candidate"]["sqlstate"] == "42501"
    assert found[NOTES]["verdict"] == "changed"
    # Read after RESET ALL and DISCARD ALL: still as the role, so the revoke bites.
    assert found["SELECT count(*) FROM items"]["verdict"] == "fails"
    others = {sql: c["verdict"] for sql, c in found.items() if "accounts" in sql}
    assert others and set(others.values()) == {"ok"}


def test_a_new_table_granted_to_the_role_applies_with_no_finding(
    tmp_path, capture, source, app_role
):
    folder = migrations(
        tmp_path,
        **{
            "001_audit": "CREATE TABLE audit_log (id bigint PRIMARY KEY, what text NOT NULL);\n"
            f"GRANT SELECT, INSERT ON audit_log TO {app_role};"
        },
    )
    report = tmp_path / "report"
    code, output = run(
        "--capture", capture, "--source", source, "--migrations", folder, "--out", report
    )
    assert code == 0, output
    verdicts = {c["verdict"] for c in classes(report).values()}
    assert verdicts == {"ok"}, output


def test_as_connected_user_replays_as_the_urls_user(tmp_path, capture, source, app_role):
    folder = migrations(tmp_path, **{"001": f"REVOKE SELECT ON items FROM {app_role};"})
    report = tmp_path / "report"
    code, output = run(
        "--capture",
        capture,
        "--source",
        source,
        "--migrations",
        folder,
        "--out",
        report,
        "--as-connected-user",
    )
    assert code == 0, output
    assert {c["verdict"] for c in classes(report).values()} == {"ok"}


def test_the_session_runs_as_its_role_on_user_made_targets(tmp_path, pg_server, app_role):
    names = [pg_server.create_database() for _ in range(2)]
    try:
        for name in names:
            with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
                conn.execute("CREATE TABLE seen (session_user_ text, current_user_ text)")
                conn.execute(f"GRANT INSERT ON seen TO {app_role}")
        script = SessionScript("s1", database="shop", user=app_role)
        script.simple("DISCARD ALL")
        script.simple("INSERT INTO seen VALUES (session_user, current_user)")
        capture = write_capture(tmp_path / "capture", [script])
        code, output = run(
            "--capture",
            capture,
            "--baseline",
            pg_server.dsn(names[0]),
            "--candidate",
            pg_server.dsn(names[1]),
            "--out",
            tmp_path / "report",
        )
        assert code == 0, output
        for name in names:
            with psycopg.connect(pg_server.dsn(name)) as conn:
                rows = conn.execute("SELECT * FROM seen").fetchall()
            assert rows == [(app_role, app_role)]
    finally:
        for name in names:
            pg_server.drop_database(name)


def test_roles_missing_on_user_made_targets_are_listed_up_front(tmp_path, pg_server):
    names = [pg_server.create_database() for _ in range(2)]
    try:
        scripts = []
        for i, role in enumerate(["ghost_b", "ghost_a", "postgres"]):
            script = SessionScript(f"s{i}", database="shop", user=role)
            script.simple("SELECT 1")
            scripts.append(script)
        capture = write_capture(tmp_path / "capture", scripts)
        code, output = run(
            "--capture",
            capture,
            "--baseline",
            pg_server.dsn(names[0]),
            "--candidate",
            pg_server.dsn(names[1]),
            "--out",
            tmp_path / "report",
        )
        assert code == 2
        assert "roles missing on the baseline" in output and "ghost_a, ghost_b" in output
        assert "ghost" in output.strip().splitlines()[-1]
        assert not (tmp_path / "report" / "outcomes.jsonl").exists()
    finally:
        for name in names:
            pg_server.drop_database(name)


@pytest.mark.slow
def test_a_shared_scratch_gets_the_missing_roles_and_keeps_its_own(pg_server):
    """Roles made where missing, with their settings and memberships; a source
    superuser is not one there; a role the scratch server has is never altered; the
    clone keeps owners and grants."""
    tag = uuid.uuid4().hex[:6]
    readers, app, dba, old = (f"{n}_{tag}" for n in ("readers", "app", "dba", "old"))
    database = pg_server.create_database()
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {readers}")
        conn.execute(f"CREATE ROLE {app} LOGIN NOINHERIT IN ROLE {readers}")
        conn.execute(f"ALTER ROLE {app} SET search_path = shop, public")
        conn.execute(f"CREATE ROLE {dba} LOGIN SUPERUSER")
        conn.execute(f"CREATE ROLE {old} LOGIN CREATEDB")
    with psycopg.connect(pg_server.dsn(database), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE t (id int); ALTER TABLE t OWNER TO {old}")
        conn.execute(f"GRANT SELECT ON t TO {app}")
    scratch = EmbeddedServer().start()
    try:
        with psycopg.connect(scratch.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {old}")  # the scratch server's own: NOLOGIN
        with Clones(pg_server.dsn(database), scratch=scratch.url(), noise=False) as clones:
            assert set(clones.roles) >= {readers, app, dba} and old not in clones.roles
            with psycopg.connect(clones.targets["baseline"].conninfo) as conn:
                roles = {
                    r[0]: r[1:]
                    for r in conn.execute(
                        "SELECT rolname, rolcanlogin, rolinherit, rolsuper, rolcreatedb, "
                        "rolconfig FROM pg_roles WHERE rolname = ANY(%s)",
                        ([readers, app, dba, old],),
                    )
                }
                assert roles[app] == (True, False, False, False, ["search_path=shop, public"])
                assert roles[dba][2] is False  # no new superuser on a shared server
                assert roles[old] == (False, True, False, False, None)  # untouched
                assert conn.execute(
                    "SELECT pg_has_role(%s, %s, 'MEMBER')", (app, readers)
                ).fetchone() == (True,)
                owner, granted = conn.execute(
                    "SELECT tableowner, has_table_privilege(%s, 't', 'SELECT') "
                    "FROM pg_tables WHERE tablename = 't'",
                    (app,),
                ).fetchone()
                assert (owner, granted) == (old, True)
    finally:
        scratch.stop()
        pg_server.drop_database(database)
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            for role in (app, dba, old, readers):
                conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.slow
def test_a_role_the_run_may_not_create_is_a_one_line_error_naming_it(pg_server, app_role):
    database = pg_server.create_database()
    scratch = EmbeddedServer().start()
    try:
        with psycopg.connect(scratch.url(), autocommit=True) as conn:
            conn.execute("CREATE ROLE plain LOGIN CREATEDB")  # may not create roles
        plain = scratch.url(user="plain")
        with pytest.raises(SetupError) as raised, Clones(pg_server.dsn(database), scratch=plain):
            pass
        message = str(raised.value)
        named = re.match(r"cannot create role (\S+) on the scratch server: permission", message)
        assert named and "\n" not in message, message
        with psycopg.connect(pg_server.url) as conn:  # a role of the source
            assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (named[1],)).fetchone()
        with psycopg.connect(scratch.url()) as conn:
            made = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'replay%'")
            assert made.fetchall() == []
    finally:
        scratch.stop()
        pg_server.drop_database(database)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--replay-role", "x", "--as-connected-user"], "not both"),
        (["--replay-role", ""], "needs a role name"),
    ],
)
def test_the_role_options_are_checked(tmp_path, extra, message):
    capture = write_capture(tmp_path / "capture", [SessionScript("s1")])
    code, output = run(
        "--capture", capture, "--source", "postgresql://x/y", "--migrations", tmp_path,
        "--out", tmp_path / "r", *extra,
    )
    assert code == 2 and message in output


@pytest.mark.slow
def test_a_target_that_wants_the_roles_password_is_refused_up_front(tmp_path):
    hba = "local all all trust\nhost all shop_app 127.0.0.1/32 scram-sha-256\n"
    server = EmbeddedServer(hba=hba + "host all all 127.0.0.1/32 trust\n").start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE ROLE shop_app LOGIN PASSWORD 'kept secret'")
            for name in ("b", "c"):
                conn.execute(f"CREATE DATABASE {name}")
        script = SessionScript("s1", database="shop", user="shop_app")
        script.simple("SELECT 1")
        capture = write_capture(tmp_path / "capture", [script])
        report = tmp_path / "report"
        code, output = run(
            "--capture",
            capture,
            "--baseline",
            server.url("b"),
            "--candidate",
            server.url("c"),
            "--out",
            report,
        )
        assert code == 2
        last = output.strip().splitlines()[-1]
        assert "cannot replay as role shop_app on the baseline" in last
        assert "--as-connected-user" in last
        assert not (report / "outcomes.jsonl").exists()
        # The option that keeps the old behaviour replays it as the URL's user.
        code, output = run(
            "--capture",
            capture,
            "--baseline",
            server.url("b"),
            "--candidate",
            server.url("c"),
            "--out",
            report,
            "--as-connected-user",
        )
        assert code == 0, output
    finally:
        server.stop()
