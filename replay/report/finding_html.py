"""What a finding's card in ``report.html`` shows, as plain text for ``finding.html``.

The card's layout is the template ``templates/finding.html`` (with ``evidence.html``);
these helpers turn a class's outcomes, blame and examples into the strings it prints.
They return text, never markup: the template's autoescape makes SQL, parameters and
error messages (which come from the application and the database) safe.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.postgres import types as builtin_types

from replay.report.words import blame_text

# The first differing sample rows a finding shows.
SAMPLE_ROWS = 10


def type_name(oid: object) -> str:
    """A result column's type OID as PostgreSQL names a built-in type, else ``oid N``.

    psycopg's registry knows every built-in type and its array (``integer[]``); a type the
    database made (an enum, a domain) has an OID of its own that no registry can name.
    """
    # Only numbers: the registry also looks names up, and an OID is never a name.
    info = builtin_types.get(oid) if isinstance(oid, int) else None
    if info is None:
        return f"oid {oid}"
    # regtype is what format_type() prints ("integer", "character varying"), the words the
    # schema diff uses too; name is the internal one ("int4").
    name = info.regtype or info.name
    return f"{name}[]" if oid == info.array_oid else name


def when(iso: str | None) -> str:
    """``2026-01-01T00:00:03.000+00:00`` as ``2026-01-01 00:00:03 UTC``."""
    if not iso:
        return ""
    return iso.replace("T", " ").split(".")[0].removesuffix("+00:00") + " UTC"


def blame_where(blame: dict[str, Any]) -> str:
    """The blamed migration and statement number; the card shows the statement itself below."""
    return blame_text({**blame, "statement": ""})


def dumps(value: Any) -> str:
    """Captured parameters as JSON, as the application sent them."""
    return json.dumps(value)


def differing_rows(
    baseline: dict[str, Any], candidate: dict[str, Any]
) -> list[tuple[int, str, str]] | None:
    """The first differing sample rows as (row number, baseline, candidate) texts.

    ``None`` when the engine kept no samples for both sides; then the card shows the
    tags, row counts and digests instead.
    """
    base_rows, cand_rows = baseline.get("sample"), candidate.get("sample")
    if not (isinstance(base_rows, list) and isinstance(cand_rows, list)):
        return None
    pairs = [
        (i + 1, row_text(b), row_text(c))
        for i, (b, c) in enumerate(_padded(base_rows, cand_rows))
        if json.dumps(b) != json.dumps(c)
    ]
    return pairs[:SAMPLE_ROWS]


def _padded(a: list[Any], b: list[Any]) -> list[tuple[Any, Any]]:
    size = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(size)]


def row_text(values: Any) -> str:
    """A sample row in a line: ``1 | NULL | x``; a row one side lacks is ``(no row)``."""
    if values is None:
        return "(no row)"
    if isinstance(values, list):
        return " | ".join("NULL" if v is None else str(v) for v in values)
    return str(values)
