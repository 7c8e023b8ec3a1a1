"""One finding of ``report.html``: the query, both sides' outcomes, the evidence, the blame.

Every piece of captured or server text goes through :func:`html.escape`: SQL, parameters
and error messages come from the application and the database, not from us.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from replay.compare import QueryClass, Verdict
from replay.report.words import MEANING, blame_text, ms, one_line, outcome_text, percent

SAMPLE_ROWS = 10
# Built-in type OIDs (pg_type.dat) a result column most often has, to show names not numbers.
TYPE_NAMES = {
    16: "boolean", 20: "bigint", 21: "smallint", 23: "integer", 25: "text", 114: "json",
    700: "real", 701: "double precision", 1042: "character", 1043: "character varying",
    1082: "date", 1083: "time", 1114: "timestamp", 1184: "timestamptz", 1186: "interval",
    1700: "numeric", 2950: "uuid", 3802: "jsonb", 17: "bytea", 26: "oid",
}  # fmt: skip


def type_name(oid: object) -> str:
    """A type OID as its name where it is a common built-in one, else ``oid N``."""
    return TYPE_NAMES.get(oid, f"oid {oid}") if isinstance(oid, int) else f"oid {oid}"


def finding(query_class: QueryClass) -> str:
    """The card for one non-ok class."""
    verdict = query_class.verdict
    return (
        f'<section class="panel finding v-{verdict}" id="class-{escape(query_class.fingerprint)}">'
        f'<h3><span class="badge {verdict}">{escape(str(verdict).replace("_", " "))}</span>'
        f"<code>{escape(one_line(query_class.normalized, 140))}</code></h3>"
        f'<div class="stats">{_stats(query_class)}</div>'
        f'<div class="muted">{escape(MEANING[verdict])}</div>'
        f"<pre>{escape(query_class.sql)}</pre>"
        f"{_sides(query_class)}{_evidence(query_class)}{_blame(query_class)}"
        f"{_examples(query_class)}</section>"
    )


def _stats(query_class: QueryClass) -> str:
    latency = query_class.latency
    parts = [
        f"<b>{query_class.count}</b> statements ({percent(query_class.share)} of traffic)",
        f"<b>{query_class.affected_sessions}</b>/{query_class.sessions} sessions",
    ]
    if query_class.affected_applications or query_class.applications:
        apps = query_class.affected_applications or query_class.applications
        parts.append("apps: " + ", ".join(f"<b>{escape(a)}</b>" for a in apps))
    if query_class.cascaded:
        parts.append(f"<b>{query_class.cascaded}</b> later statements aborted with it")
    if query_class.first_seen:
        parts.append(
            f"seen {escape(_when(query_class.first_seen))} … {escape(_when(query_class.last_seen))}"
        )
    if latency.baseline_median or latency.candidate_median:
        parts.append(
            f"median {ms(latency.baseline_median)} → {ms(latency.candidate_median)}, "
            f"p95 {ms(latency.baseline_p95)} → {ms(latency.candidate_p95)}"
        )
    return " · ".join(parts)


def _when(iso: str | None) -> str:
    """``2026-01-01T00:00:03.000+00:00`` as ``2026-01-01 00:00:03 UTC``."""
    if not iso:
        return ""
    return iso.replace("T", " ").split(".")[0].removesuffix("+00:00") + " UTC"


def _side(title: str, outcome: Mapping[str, Any], bad: bool) -> str:
    css = "side bad" if bad else "side"
    body = escape(outcome_text(outcome))
    if outcome.get("status") == "ok" and outcome.get("columns"):
        names = ", ".join(str(name) for name, _ in outcome["columns"])
        body += f'<div class="muted mono">columns: {escape(names)}</div>'
    return f'<div class="{css}"><h4>{escape(title)}</h4><div class="mono">{body}</div></div>'


def _sides(query_class: QueryClass) -> str:
    base, cand = query_class.baseline, query_class.candidate
    base_bad = base.get("status") in ("error", "timeout")
    cand_bad = cand.get("status") in ("error", "timeout") or query_class.verdict in (
        Verdict.SHAPE,
        Verdict.CHANGED,
    )
    return (
        f'<div class="sides">{_side("Baseline", base, base_bad)}'
        f"{_side('Candidate', cand, cand_bad)}</div>"
    )


def _evidence(query_class: QueryClass) -> str:
    if query_class.verdict is Verdict.SHAPE and query_class.column_diff:
        return _column_diff(query_class.column_diff)
    if query_class.verdict in (Verdict.CHANGED, Verdict.NOISY):
        return _row_diff(query_class.baseline, query_class.candidate)
    return ""


def _column_diff(diff: Mapping[str, Any]) -> str:
    rows = [
        f'<tr class="added"><td>added</td><td class="mono">{escape(str(n))}</td>'
        f"<td>{escape(type_name(o))}</td></tr>"
        for n, o in diff.get("added", [])
    ]
    rows += [
        f'<tr class="dropped"><td>dropped</td><td class="mono">{escape(str(n))}</td>'
        f"<td>{escape(type_name(o))}</td></tr>"
        for n, o in diff.get("dropped", [])
    ]
    rows += [
        f'<tr class="changed"><td>retyped</td><td class="mono">{escape(str(c["name"]))}</td>'
        f"<td>{escape(type_name(c['baseline']))} → {escape(type_name(c['candidate']))}</td></tr>"
        for c in diff.get("retyped", [])
    ]
    if diff.get("reordered"):
        rows.append('<tr class="changed"><td>reordered</td><td></td><td></td></tr>')
    return (
        "<table><thead><tr><th>Column change</th><th>Column</th><th>Type</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _row_diff(base: Mapping[str, Any], cand: Mapping[str, Any]) -> str:
    """The first differing rows when the engine kept samples, else counts and digests."""
    base_rows, cand_rows = base.get("sample"), cand.get("sample")
    if isinstance(base_rows, list) and isinstance(cand_rows, list):
        pairs = [
            (i, b, c)
            for i, (b, c) in enumerate(_padded(base_rows, cand_rows))
            if json.dumps(b) != json.dumps(c)
        ][:SAMPLE_ROWS]
        body = "".join(
            f'<tr><td class="num">{i + 1}</td><td class="mono diff-del">{escape(_row(b))}</td>'
            f'<td class="mono diff-add">{escape(_row(c))}</td></tr>'
            for i, b, c in pairs
        )
        return (
            "<table><thead><tr><th class='num'>Row</th><th>Baseline</th><th>Candidate</th>"
            f"</tr></thead><tbody>{body}</tbody></table>"
        )
    cells = [
        ("command tag", base.get("tag"), cand.get("tag")),
        ("rows", base.get("rows"), cand.get("rows")),
        ("digest", base.get("digest"), cand.get("digest")),
    ]
    body = "".join(
        f"<tr><td>{name}</td><td class='mono'>{escape(str(b))}</td>"
        f"<td class='mono{' diff-add' if b != c else ''}'>{escape(str(c))}</td></tr>"
        for name, b, c in cells
    )
    return (
        "<table><thead><tr><th>Result</th><th>Baseline</th><th>Candidate</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
        '<p class="muted">The replay kept no sample rows, so the digests stand in for '
        "the values.</p>"
    )


def _padded(a: list[Any], b: list[Any]) -> list[tuple[Any, Any]]:
    size = max(len(a), len(b))
    return [(a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(size)]


def _row(values: Any) -> str:
    if values is None:
        return "(no row)"
    if isinstance(values, list):
        return " | ".join("NULL" if v is None else str(v) for v in values)
    return str(values)


def _blame(query_class: QueryClass) -> str:
    blame = query_class.blame
    if not blame:
        if query_class.verdict in (Verdict.FAILS, Verdict.SHAPE, Verdict.CHANGED):
            return (
                '<div class="blame unknown">Blamed migration statement: not determined '
                "(blame runs with <code>--migrations DIR</code>).</div>"
            )
        return ""
    statement = blame.get("statement")
    code = f"<pre>{escape(str(statement))}</pre>" if statement else ""
    return (
        f'<div class="blame"><b>Caused by</b> '
        f'<span class="mono">{escape(blame_text({**blame, "statement": ""}))}</span>{code}</div>'
    )


def _examples(query_class: QueryClass) -> str:
    if not query_class.examples:
        return ""
    rows = "".join(
        f"<tr><td class='mono'>{escape(_when(e.get('time')))}</td>"
        f"<td class='mono'>{escape(str(e.get('session')))}</td>"
        f"<td class='mono'>{escape(one_line(json.dumps(e.get('params') or []), 160))}</td>"
        f"<td class='mono'>{escape(outcome_text(e.get('candidate') or {}))}</td></tr>"
        for e in query_class.examples
    )
    return (
        f"<details><summary>{len(query_class.examples)} examples</summary><table><thead><tr>"
        "<th>Captured at</th><th>Session</th><th>Parameters</th><th>Candidate</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></details>"
    )
