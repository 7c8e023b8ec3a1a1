"""Schema snapshots from a real PostgreSQL, and their diff."""

from __future__ import annotations

import json

import psycopg
import pytest

from replay.errors import SetupError
from replay.targets.schema import diff, snapshot

SCHEMA = """
CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh');
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name varchar(40) NOT NULL,
    mood mood DEFAULT 'happy',
    CONSTRAINT name_not_blank CHECK (name <> '')
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int REFERENCES customers (id),
    total numeric(10, 2)
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
CREATE FUNCTION order_count(c int) RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM orders WHERE customer_id = c $$;
CREATE SEQUENCE invoice_no START 1000;
"""

MIGRATION = """
ALTER TABLE customers ALTER COLUMN name TYPE varchar(20);
ALTER TABLE customers ADD COLUMN nickname text;
ALTER TABLE orders ALTER COLUMN total SET NOT NULL;
ALTER TABLE customers DROP CONSTRAINT name_not_blank;
DROP INDEX orders_customer;
CREATE INDEX orders_total ON orders (total);
DROP VIEW big_orders;
CREATE OR REPLACE FUNCTION order_count(c int) RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) + 0 FROM orders WHERE customer_id = c $$;
ALTER TYPE mood ADD VALUE 'angry';
CREATE TABLE audit (id int);
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER stamp BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION stamp();
"""


def test_snapshot_reads_every_kind_of_object(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    schema = snapshot(dsn)
    json.dumps(schema)  # JSON-ready as schema.json stores it
    customers = schema["tables"]["public.customers"]
    assert customers["columns"]["name"] == {
        "type": "character varying(40)", "nullable": False, "default": None, "generated": "",
    }  # fmt: skip
    assert customers["columns"]["mood"]["default"] == "'happy'::mood"
    assert customers["constraints"]["name_not_blank"]["type"] == "c"
    assert "CHECK" in customers["constraints"]["name_not_blank"]["definition"]
    assert customers["constraints"]["customers_pkey"]["type"] == "p"
    assert (
        "FOREIGN KEY"
        in (
            schema["tables"]["public.orders"]["constraints"]["orders_customer_id_fkey"][
                "definition"
            ]
        )
    )
    assert schema["indexes"]["public.orders_customer"]["table"] == "public.orders"
    assert "total > " in schema["views"]["public.big_orders"]["definition"]
    assert schema["functions"]["public.order_count(c integer)"]["returns"] == "bigint"
    assert schema["enums"] == {"public.mood": ["happy", "sad", "meh"]}
    assert schema["sequences"]["public.invoice_no"]["start"] == 1000
    assert "pg_catalog.pg_class" not in schema["tables"]


def test_diff_names_what_a_migration_did(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        before = snapshot(dsn)
        conn.execute(MIGRATION)
    after = snapshot(dsn)
    changes = {(c["kind"], c["name"], c["change"]): c for c in diff(before, after)}
    assert set(changes) == {
        ("table", "public.audit", "added"),
        ("column", "public.customers.name", "changed"),
        ("column", "public.customers.nickname", "added"),
        ("column", "public.orders.total", "changed"),
        ("constraint", "public.customers.name_not_blank", "dropped"),
        ("trigger", "public.orders.stamp", "added"),
        ("index", "public.orders_customer", "dropped"),
        ("index", "public.orders_total", "added"),
        ("view", "public.big_orders", "dropped"),
        ("function", "public.order_count(c integer)", "changed"),
        ("function", "public.stamp()", "added"),
        ("enum", "public.mood", "changed"),
    }
    name = changes[("column", "public.customers.name", "changed")]
    assert name["detail"] == "type: character varying(40) → character varying(20)"
    assert changes[("enum", "public.mood", "changed")]["detail"] == "added angry"
    assert changes[("column", "public.orders.total", "changed")]["detail"] == (
        "nullable: True → False"
    )
    assert diff(after, after) == []


def test_diff_is_pure_over_dicts() -> None:
    before = {"tables": {"public.t": {"kind": "r", "columns": {"a": {"type": "int"}}}}}
    after = {"tables": {"public.t": {"kind": "r", "columns": {"b": {"type": "int"}}}}}
    assert [(c["name"], c["change"]) for c in diff(before, after)] == [
        ("public.t.a", "dropped"),
        ("public.t.b", "added"),
    ]


def test_unreachable_database_is_a_setup_error() -> None:
    with pytest.raises(SetupError):
        snapshot("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
