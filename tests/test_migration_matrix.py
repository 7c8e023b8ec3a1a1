"""A migration matrix: one captured workload, replayed against many one-file migrations.

A small shop schema (customers, orders, an enum, a view, a SQL function, a varchar(40)
column) is loaded into a *source* database. The old application's workload runs once
per module through a real ``replay capture`` proxy against a copy of it (so that the
untouched source is the pre-capture snapshot the replay clones, as a nightly snapshot
would be). Then every case applies one migration file to the candidate and checks the
verdict of the query classes it breaks *and* that nothing else is reported: every other
class is ``ok``, except the few that are nondeterministic by nature (``noisy``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from conftest import PgServer, start_capture

from replay.compare import QueryClass
from replay.run import RunOptions, RunResult, run_replay

SCHEMA = """
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE TABLE customers (
    id int PRIMARY KEY,
    email text NOT NULL,
    name varchar(40) NOT NULL,
    country text
);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    status order_status NOT NULL DEFAULT 'new',
    quantity int NOT NULL,
    total numeric(10, 2) NOT NULL,
    note text
);
CREATE VIEW customer_totals AS
    SELECT c.id, c.name, count(o.id) AS orders, coalesce(sum(o.total), 0) AS spent
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
    GROUP BY c.id, c.name;
CREATE FUNCTION with_tax(amount numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE AS $$ SELECT round(amount * 1.2, 2) $$;
INSERT INTO customers
    SELECT i, 'c' || i || '@example.org', 'Customer ' || i, 'FR' FROM generate_series(1, 30) i;
INSERT INTO orders (customer_id, status, quantity, total)
    SELECT 1 + i % 30, 'paid', 1 + i % 3, 10 + i FROM generate_series(1, 60) i;
"""

# The old application's queries, one constant per query class.
CUSTOMER = "SELECT id, email, name FROM customers WHERE id = %s"
CUSTOMER_ROW = "SELECT * FROM customers WHERE id = %s"
ORDERS_OF = "SELECT id, status, total FROM orders WHERE customer_id = %s ORDER BY id"
TOTALS = "SELECT name, orders, spent FROM customer_totals WHERE id = %s"
WITH_TAX = "SELECT id, with_tax(total) FROM orders WHERE id = %s"
ADD_CUSTOMER = "INSERT INTO customers (id, email, name, country) VALUES (%s, %s, %s, %s)"
ADD_ORDER = (
    "INSERT INTO orders (customer_id, quantity, total, note) VALUES (%s, %s, %s, %s)"
    " RETURNING id, status, total"
)
BUMP_QUANTITY = "UPDATE orders SET quantity = quantity + %s WHERE id = %s"
SET_STATUS = "UPDATE orders SET status = %s WHERE id = %s"
SET_COUNTRY = "UPDATE customers SET country = %s WHERE id = %s"
CLOCK = "SELECT now() AS at, random() AS luck"
DICE = "SELECT i, floor(random() * %s)::int AS roll FROM generate_series(1, 3) i"
# What is nondeterministic by nature: noisy in every case, never blamed on a migration.
NOISY = frozenset({CLOCK, DICE})

Order = tuple[int, Decimal, str | None, str]

# (id, email, name, [(quantity, total, note, final status)]). The last customer is the
# odd one: a long name, an email another customer has, a free order with a note that is
# not a number, and a cancellation. Its transaction comes last, so a migration that makes
# it fail changes nothing the workload does afterwards.
NEW_CUSTOMERS: list[tuple[int, str, str, list[Order]]] = [
    (101, "ada@example.org", "Ada Lovelace", [(2, Decimal("19.99"), None, "paid")]),
    (102, "alan@example.org", "Alan Turing", [(1, Decimal("42.50"), None, "shipped")]),
    (
        103,
        "c3@example.org",
        "Grace Brewster Murray Hopper",
        [(1, Decimal("12.00"), None, "paid"), (1, Decimal("0.00"), "leave at door", "cancelled")],
    ),
]


def reader(url: str, app: str, ids: range) -> None:
    """A web worker showing customer pages: reads only, autocommit."""
    with psycopg.connect(url, autocommit=True, application_name=app) as conn:
        for i in ids:
            conn.execute(CUSTOMER, [i])
            conn.execute(CUSTOMER_ROW, [i])
            conn.execute(ORDERS_OF, [i])
            conn.execute(TOTALS, [i])
            conn.execute(WITH_TAX, [i])


def writer(url: str) -> None:
    """The checkout: each new customer and their orders in one transaction."""
    with psycopg.connect(url, autocommit=True, application_name="shop-checkout") as conn:
        for i in range(11, 15):  # outside any transaction
            conn.execute(SET_COUNTRY, ["DE", i])
        for customer, email, name, orders in NEW_CUSTOMERS:
            with conn.transaction():
                conn.execute(ADD_CUSTOMER, [customer, email, name, "GB"])
                for quantity, total, note, status in orders:
                    row = conn.execute(ADD_ORDER, [customer, quantity, total, note]).fetchone()
                    assert row is not None
                    conn.execute(BUMP_QUANTITY, [1, row[0]])
                    conn.execute(SET_STATUS, [status, row[0]])


def gambler(url: str) -> None:
    """Statements whose answers differ on every run: the clock and dice."""
    with psycopg.connect(url, autocommit=True, application_name="shop-stats") as conn:
        for sides in (6, 20, 100, 1000):
            conn.execute(CLOCK)
            conn.execute(DICE, [sides])


@dataclass
class Shop:
    """The captured workload and where to replay it from."""

    capture: Path
    source: str
    server: PgServer
    runs: Path


def _sql(query: str) -> str:
    """The SQL psycopg sends for one of the constants above."""
    parts = query.split("%s")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


@pytest.fixture(scope="module")
def shop(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The source database and a capture of the workload, made once per module."""
    source = pg_server.create_database()
    production = pg_server.create_database()
    folder = tmp_path_factory.mktemp("matrix")
    try:
        with psycopg.connect(pg_server.dsn(source), autocommit=True) as conn:
            conn.execute(SCHEMA.encode())
        pg_server.drop_database(production)
        with psycopg.connect(pg_server.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{production}" TEMPLATE "{source}"')
        proxy = start_capture(f"{pg_server.host}:{pg_server.port}", folder / "capture")
        try:
            url = proxy.url(production)
            reader(url, "shop-web-1", range(1, 6))
            reader(url, "shop-web-2", range(6, 11))
            writer(url)
            gambler(url)
        finally:
            proxy.stop()
        yield Shop(folder / "capture", pg_server.dsn(source), pg_server, folder / "runs")
    finally:
        pg_server.drop_database(production)
        pg_server.drop_database(source)


def replay_migration(shop: Shop, name: str, sql: str, *, blame: bool = False) -> RunResult:
    """Replay the shop's capture against the source with one migration file applied."""
    migrations = shop.runs / name / "migrations"
    migrations.mkdir(parents=True)
    (migrations / f"001_{name}.sql").write_text(sql)
    options = RunOptions(
        capture=shop.capture,
        out=shop.runs / name / "report",
        source=shop.source,
        scratch=shop.server.url,
        migrations=migrations,
        jobs=2,
        blame=blame,
    )
    return run_replay(options)


def by_query(result: RunResult) -> dict[str, QueryClass]:
    """The run's classes keyed by the constant that produced them (or their own SQL)."""
    constants = {
        _sql(q): q
        for q in (
            CUSTOMER,
            CUSTOMER_ROW,
            ORDERS_OF,
            TOTALS,
            WITH_TAX,
            ADD_CUSTOMER,
            ADD_ORDER,
            BUMP_QUANTITY,
            SET_STATUS,
            SET_COUNTRY,
            CLOCK,
            DICE,
        )
    }
    return {constants.get(c.sql, c.sql): c for c in result.findings.classes}


@dataclass(frozen=True)
class Case:
    """One migration and the verdicts it must give; every class not named is ``ok``."""

    sql: str
    expect: dict[str, str]


# Recreating the view is part of narrowing a column it shows (PostgreSQL refuses to
# alter the type of a column a view uses).
VIEW = """CREATE VIEW customer_totals AS
    SELECT c.id, c.name, count(o.id) AS orders, coalesce(sum(o.total), 0) AS spent
    FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
    GROUP BY c.id, c.name;"""

CASES: dict[str, Case] = {
    "drop_column": Case(
        "ALTER TABLE customers DROP COLUMN email;",
        {CUSTOMER: "fails", ADD_CUSTOMER: "fails", CUSTOMER_ROW: "shape"},
    ),
    "rename_column": Case(
        "ALTER TABLE orders RENAME COLUMN total TO amount;",
        {ORDERS_OF: "fails", WITH_TAX: "fails", ADD_ORDER: "fails"},
    ),
    "rename_table": Case(
        "ALTER TABLE customers RENAME TO clients;",
        {CUSTOMER: "fails", CUSTOMER_ROW: "fails", ADD_CUSTOMER: "fails", SET_COUNTRY: "fails"},
    ),
    "retype_int_to_text": Case(
        "ALTER TABLE orders ALTER COLUMN quantity TYPE text;",
        {BUMP_QUANTITY: "fails"},
    ),
    "retype_text_to_int": Case(
        "ALTER TABLE orders ALTER COLUMN note TYPE int USING note::int;",
        {ADD_ORDER: "fails"},
    ),
    "add_not_null_without_default": Case(
        "ALTER TABLE orders ADD COLUMN channel text NOT NULL DEFAULT 'web';\n"
        "ALTER TABLE orders ALTER COLUMN channel DROP DEFAULT;",
        {ADD_ORDER: "fails"},
    ),
    "add_check_violated": Case(
        "ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total > 0);",
        {ADD_ORDER: "fails"},
    ),
    "add_unique_violated": Case(
        "ALTER TABLE customers ADD CONSTRAINT customers_email_key UNIQUE (email);",
        {ADD_CUSTOMER: "fails"},
    ),
    "drop_view": Case("DROP VIEW customer_totals;", {TOTALS: "fails"}),
    "drop_function": Case("DROP FUNCTION with_tax(numeric);", {WITH_TAX: "fails"}),
    "narrow_varchar": Case(
        "DROP VIEW customer_totals;\n"
        "ALTER TABLE customers ALTER COLUMN name TYPE varchar(20);\n" + VIEW,
        {ADD_CUSTOMER: "fails"},
    ),
    "drop_enum_value": Case(
        "ALTER TYPE order_status RENAME TO order_status_old;\n"
        "CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped');\n"
        "ALTER TABLE orders ALTER COLUMN status DROP DEFAULT;\n"
        "UPDATE orders SET status = 'shipped' WHERE status = 'cancelled';\n"
        "ALTER TABLE orders ALTER COLUMN status TYPE order_status"
        " USING status::text::order_status;\n"
        "ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'new';\n"
        "DROP TYPE order_status_old;",
        {SET_STATUS: "fails"},
    ),
    "change_default": Case(
        "ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'paid';",
        {ADD_ORDER: "changed"},
    ),
    "trigger_rewrites_values": Case(
        "CREATE FUNCTION round_total() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN NEW.total := round(NEW.total); RETURN NEW; END $$;\n"
        "CREATE TRIGGER orders_round_total BEFORE INSERT ON orders\n"
        "    FOR EACH ROW EXECUTE FUNCTION round_total();",
        {ADD_ORDER: "changed"},
    ),
    "add_column_seen_by_star": Case(
        "ALTER TABLE customers ADD COLUMN phone text;", {CUSTOMER_ROW: "shape"}
    ),
    "add_table": Case("CREATE TABLE coupons (code text PRIMARY KEY, percent int NOT NULL);", {}),
    # Beyond the list.
    "add_check_not_valid": Case(
        "ALTER TABLE customers ADD CONSTRAINT customers_not_de CHECK (country <> 'DE') NOT VALID;",
        {SET_COUNTRY: "fails"},
    ),
    "backfill_rewrites_data": Case(
        "UPDATE customers SET name = upper(name);",
        {CUSTOMER: "changed", CUSTOMER_ROW: "changed", TOTALS: "changed"},
    ),
    "text_to_enum": Case(
        "CREATE TYPE country_code AS ENUM ('DE', 'FR', 'GB');\n"
        "ALTER TABLE customers ALTER COLUMN country TYPE country_code"
        " USING country::country_code;",
        {CUSTOMER_ROW: "shape"},
    ),
    "widen_varchar": Case(
        "DROP VIEW customer_totals;\n"
        "ALTER TABLE customers ALTER COLUMN name TYPE varchar(80);\n" + VIEW,
        {},
    ),
    "drop_not_null": Case("ALTER TABLE orders ALTER COLUMN quantity DROP NOT NULL;", {}),
    "add_index": Case("CREATE INDEX orders_customer_idx ON orders (customer_id);", {}),
    "add_column_not_seen": Case("ALTER TABLE orders ADD COLUMN gift boolean;", {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_migration_matrix(shop: Shop, name: str) -> None:
    case = CASES[name]
    result = replay_migration(shop, name, case.sql)
    classes = by_query(result)
    for query in case.expect:
        assert query in classes, f"{query!r} was not replayed"
    got = {
        query: str(c.verdict)
        for query, c in classes.items()
        if str(c.verdict) != "ok" and not (query in NOISY and str(c.verdict) == "noisy")
    }
    assert got == case.expect, _explain(classes)
    for query in NOISY:
        assert str(classes[query].verdict) == "noisy"


def _explain(classes: dict[str, QueryClass]) -> str:
    lines = []
    for query, c in classes.items():
        lines.append(f"{c.verdict}: {query} base={c.baseline} cand={c.candidate}")
    return "\n".join(lines)


def test_blame_names_the_migration_file(shop: Shop) -> None:
    started = time.perf_counter()
    result = replay_migration(
        shop, "blamed", "ALTER TABLE customers RENAME COLUMN email TO email_address;", blame=True
    )
    account = by_query(result)[CUSTOMER]
    assert str(account.verdict) == "fails"
    assert account.candidate["sqlstate"] == "42703"
    assert account.blame is not None
    assert account.blame["migration"] == "001_blamed.sql"
    assert "RENAME COLUMN email" in account.blame["statement"]
    assert time.perf_counter() - started < 60
