"""Schema snapshots of a database and the difference between two of them.

:func:`snapshot` reads pg_catalog (user schemas only, objects owned by extensions left
out) into plain JSON-ready dicts keyed by qualified name; the run saves one for the
baseline and one for the candidate in ``schema.json``. :func:`diff` is pure: it says
what the migrations added, dropped or changed, for the report's schema section.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from replay.errors import SetupError

Snapshot = dict[str, Any]
SchemaChange = dict[str, Any]

_USER = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
    " AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'"
)


def _not_extension(catalog: str, alias: str) -> str:
    return (
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = "
        f"'{catalog}'::regclass AND d.objid = {alias}.oid AND d.deptype = 'e')"
    )


_QUERIES = {
    "tables": f"""
        SELECT n.nspname || '.' || c.relname AS name, c.relkind AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f') AND {_USER} AND {_not_extension("pg_class", "c")}""",
    "columns": f"""
        SELECT n.nspname || '.' || c.relname AS table, a.attname AS name,
               format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
               pg_get_expr(ad.adbin, ad.adrelid) AS default, a.attgenerated::text AS generated
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped AND {_USER}
        ORDER BY 1, a.attnum""",
    "constraints": f"""
        SELECT n.nspname || '.' || c.relname AS table, k.conname AS name,
               k.contype::text AS type, pg_get_constraintdef(k.oid) AS definition
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype <> 'n' AND {_USER}""",
    "triggers": f"""
        SELECT n.nspname || '.' || c.relname AS table, t.tgname AS name,
               pg_get_triggerdef(t.oid) AS definition
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND {_USER}""",
    "indexes": f"""
        SELECT n.nspname || '.' || i.relname AS name, n.nspname || '.' || c.relname AS table,
               pg_get_indexdef(i.oid) AS definition
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE {_USER} AND {_not_extension("pg_class", "c")}""",
    "views": f"""
        SELECT n.nspname || '.' || c.relname AS name, c.relkind = 'm' AS materialized,
               pg_get_viewdef(c.oid) AS definition
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND {_USER} AND {_not_extension("pg_class", "c")}""",
    "functions": f"""
        SELECT n.nspname || '.' || p.proname
                   || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name,
               p.prokind::text AS kind, pg_get_function_result(p.oid) AS returns,
               md5(coalesce(p.prosrc, '')) AS body_md5
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER} AND {_not_extension("pg_proc", "p")}""",
    "enums": f"""
        SELECT n.nspname || '.' || t.typname AS name,
               array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE {_USER} AND {_not_extension("pg_type", "t")}
        GROUP BY 1""",
    "sequences": f"""
        SELECT n.nspname || '.' || c.relname AS name, format_type(s.seqtypid, NULL) AS type,
               s.seqstart AS start, s.seqincrement AS increment, s.seqmin AS min,
               s.seqmax AS max, s.seqcycle AS cycle
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER}""",
}
_TABLE_PARTS = ("columns", "constraints", "triggers")


def snapshot(conninfo: str) -> Snapshot:
    """The schema of the database at ``conninfo``, as JSON-ready dicts."""
    try:
        with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
            rows = {part: conn.execute(sql).fetchall() for part, sql in _QUERIES.items()}
    except psycopg.Error as exc:
        raise SetupError(f"cannot read the schema: {str(exc).strip()}") from None
    tables: dict[str, Any] = {
        r["name"]: {"kind": r["kind"], **{part: {} for part in _TABLE_PARTS}}
        for r in rows["tables"]
    }
    for part in _TABLE_PARTS:
        for r in rows[part]:
            if r["table"] in tables:
                tables[r["table"]][part][r["name"]] = _without(r, "table", "name")
    return {
        "tables": dict(sorted(tables.items())),
        "indexes": _keyed(rows["indexes"]),
        "views": _keyed(rows["views"]),
        "functions": _keyed(rows["functions"]),
        "enums": {r["name"]: list(r["labels"]) for r in sorted(rows["enums"], key=_name)},
        "sequences": _keyed(rows["sequences"]),
    }


def _name(row: dict[str, Any]) -> str:
    return str(row["name"])


def _without(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in keys}


def _keyed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {r["name"]: _without(r, "name") for r in sorted(rows, key=_name)}


def diff(baseline: Snapshot, candidate: Snapshot) -> list[SchemaChange]:
    """What the candidate's schema adds, drops or changes relative to the baseline.

    Each change is ``{"kind", "name", "change", "before", "after", "detail"}`` with
    ``change`` one of ``added``, ``dropped``, ``changed``; a column's name is
    ``schema.table.column``. A rename shows as a drop and an add, which is what it is
    to the code that still uses the old name.
    """
    changes: list[SchemaChange] = []
    before_tables = baseline.get("tables", {})
    after_tables = candidate.get("tables", {})
    changes += _compare("table", before_tables, after_tables, nested=False)
    for table in sorted(before_tables.keys() & after_tables.keys()):
        old, new = before_tables[table], after_tables[table]
        if old.get("kind") != new.get("kind"):
            changes.append(_change("table", table, "changed", old["kind"], new["kind"]))
        for part, kind in zip(_TABLE_PARTS, ("column", "constraint", "trigger"), strict=True):
            changes += _compare(
                kind, old.get(part, {}), new.get(part, {}), prefix=f"{table}.", nested=True
            )
    for section, kind in (
        ("indexes", "index"),
        ("views", "view"),
        ("functions", "function"),
        ("enums", "enum"),
        ("sequences", "sequence"),
    ):
        changes += _compare(kind, baseline.get(section, {}), candidate.get(section, {}))
    return changes


def _compare(
    kind: str,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    prefix: str = "",
    nested: bool = True,
) -> list[SchemaChange]:
    changes: list[SchemaChange] = []
    for name in sorted(before.keys() | after.keys()):
        if name not in after:
            changes.append(_change(kind, prefix + name, "dropped", before[name], None))
        elif name not in before:
            changes.append(_change(kind, prefix + name, "added", None, after[name]))
        elif nested and before[name] != after[name]:
            changes.append(_change(kind, prefix + name, "changed", before[name], after[name]))
    return changes


def _change(kind: str, name: str, change: str, before: Any, after: Any) -> SchemaChange:
    return {
        "kind": kind,
        "name": name,
        "change": change,
        "before": before,
        "after": after,
        "detail": _detail(before, after) if change == "changed" else "",
    }


def _detail(before: Any, after: Any) -> str:
    """A one-line account of a change: ``type: integer → text; nullable: True → False``."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
        return "; ".join(f"{k}: {before.get(k)} → {after.get(k)}" for k in keys)
    if isinstance(before, list) and isinstance(after, list):
        parts = []
        if added := [x for x in after if x not in before]:
            parts.append("added " + ", ".join(map(str, added)))
        if dropped := [x for x in before if x not in after]:
            parts.append("dropped " + ", ".join(map(str, dropped)))
        return "; ".join(parts) or "reordered"
    return f"{before} → {after}"
