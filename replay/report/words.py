"""The sentences every report format shares: the headline, a verdict's meaning, an outcome.

Plain text only; each format escapes it for its own syntax.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from replay.compare import Findings, QueryClass, Verdict

TIMES = "\u00d7"  # the multiplication sign of "5.0x slower"

MEANING = {
    Verdict.FAILS: "works on the baseline, errors on the candidate",
    Verdict.SHAPE: "returns other columns or column types",
    Verdict.CHANGED: "returns other rows or values",
    Verdict.SLOWER: "much slower on the candidate than the baselines differ by",
    Verdict.NOISY: "differs between two identical baselines: not the migration's doing",
    Verdict.BOTH_FAIL: "already fails on the baseline",
    Verdict.FIXED: "fails on the baseline, works on the candidate",
    Verdict.OK: "same outcome on baseline and candidate",
}


def percent(share: float) -> str:
    """``0.38461`` as ``38.5%``; a non-zero share never shows as 0%."""
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share * 100:.1f}%"


def plural(count: int, word: str) -> str:
    suffix = "" if count == 1 else "es" if word.endswith("s") else "s"
    return f"{count} {word}{suffix}"


def headline(findings: Findings) -> str:
    """The five-second verdict: safe to deploy, or what breaks and how much traffic."""
    if findings.safe:
        return "Safe to deploy"
    breaking = len(findings.breaking)
    verb = "breaks" if breaking == 1 else "break"
    return f"{plural(breaking, 'query class')} {verb}, {percent(findings.broken_share)} of traffic"


def subline(findings: Findings) -> str:
    """What was replayed, in one sentence."""
    migrations = findings.run.get("migrations") or []
    parts = [
        f"{findings.statements} statements in {plural(len(findings.classes), 'query class')}",
    ]
    if findings.run.get("capture"):
        parts.append(f"from {findings.run['capture']}")
    if migrations:
        parts.append(f"against {plural(len(migrations), 'migration')}")
    sentence = "Replayed " + " ".join(parts) + "."
    others = [
        f"{n} {word}"
        for n, word in ((findings.cascaded, "cascaded"), (findings.unsent, "not compared"))
        if n
    ]
    return sentence + (f" ({', '.join(others)}.)" if others else "")


def outcome_text(outcome: Mapping[str, Any]) -> str:
    """One target's answer in a line: ``ERROR 42703: column ...`` or ``SELECT 3 (3 rows)``."""
    if not outcome:
        return "not replayed"
    status = outcome.get("status")
    if status in ("error", "timeout"):
        label = "TIMEOUT" if status == "timeout" else "ERROR"
        return f"{label} {outcome.get('sqlstate') or ''}: {outcome.get('message') or ''}".strip()
    if status != "ok":
        return f"{status}: {outcome.get('message') or 'not compared'}"
    rows = outcome.get("rows")
    tag = outcome.get("tag") or "ok"
    return f"{tag} ({plural(rows, 'row')})" if rows is not None else str(tag)


def finding_text(query_class: QueryClass) -> str:
    """Why a class got its verdict, in a line."""
    verdict = query_class.verdict
    if verdict is Verdict.FAILS:
        return outcome_text(query_class.candidate)
    if verdict in (Verdict.FIXED, Verdict.BOTH_FAIL):
        return "baseline: " + outcome_text(query_class.baseline)
    if verdict is Verdict.SHAPE and query_class.column_diff:
        return "columns " + columns_text(query_class.column_diff)
    if verdict is Verdict.CHANGED:
        base, cand = query_class.baseline, query_class.candidate
        if base.get("rows") != cand.get("rows"):
            return f"rows {base.get('rows')} → {cand.get('rows')}"
        if base.get("tag") != cand.get("tag"):
            return f"tag {base.get('tag')} → {cand.get('tag')}"
        return "same row count, other values"
    if verdict is Verdict.SLOWER:
        latency = query_class.latency
        ratio = latency.ratio
        times = f"{ms(latency.baseline_median)} → {ms(latency.candidate_median)} median"
        return times + (f" ({ratio:.1f}{TIMES})" if ratio else "")
    return MEANING[verdict]


def columns_text(column_diff: Mapping[str, Any]) -> str:
    parts = [f"+{name}" for name, _ in column_diff.get("added", [])]
    parts += [f"-{name}" for name, _ in column_diff.get("dropped", [])]
    parts += [
        f"{c['name']} type {c['baseline']}→{c['candidate']}" for c in column_diff.get("retyped", [])
    ]
    if column_diff.get("reordered"):
        parts.append("reordered")
    return ", ".join(parts) or "differ"


def blame_text(blame: dict[str, Any] | None) -> str:
    """The blamed migration statement in a line, or why there is none."""
    if not blame:
        return "not determined"
    if blame.get("migrations") and len(blame["migrations"]) > 1:
        return "needs together: " + " + ".join(str(m) for m in blame["migrations"])
    where = str(blame.get("migration") or "?")
    if blame.get("statement_index") is not None:
        where += f" #{int(blame['statement_index']) + 1}"
    statement = one_line(str(blame.get("statement") or ""), 160)
    return f"{where}: {statement}" if statement else where


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.0001 else f"{seconds * 1e6:.0f} µs"


def one_line(text: str, limit: int = 120) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
