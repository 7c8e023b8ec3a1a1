"""``report.md``: the verdict and the top findings, sized for a pull request comment."""

from __future__ import annotations

from replay.compare import Findings, QueryClass, Verdict
from replay.report.words import blame_text, finding_text, headline, one_line, percent, subline

TOP = 10


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return one_line(text, 200).replace("\\", "\\\\").replace("|", "\\|")


def _code(text: str) -> str:
    """An inline code span that survives backticks and pipes in the SQL."""
    body = one_line(text, 100).replace("|", "\\|")
    fence = "``" if "`" in body else "`"
    return f"{fence} {body} {fence}" if fence == "``" else f"`{body}`"


def _count(classes: list[QueryClass]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for query_class in classes:
        counts[str(query_class.verdict)] = counts.get(str(query_class.verdict), 0) + 1
    return counts


def render_markdown(findings: Findings, *, report_url: str = "report.html") -> str:
    """The Markdown report: headline, verdict counts, top findings, link to the HTML."""
    mark = "✅" if findings.safe else "❌"
    lines = [f"## {mark} shadow-replay: {headline(findings)}", "", subline(findings), ""]
    counts = findings.by_verdict()
    present = [v for v in Verdict if counts[str(v)]]
    if present:
        lines += [
            "| " + " | ".join(str(v) for v in present) + " |",
            "|" + "---:|" * len(present),
            "| " + " | ".join(str(counts[str(v)]) for v in present) + " |",
            "",
        ]
    findings_list = [c for c in findings.classes if c.verdict.at_or_above(Verdict.SLOWER)]
    others = [c for c in findings.classes if c.is_finding and c not in findings_list]
    if findings_list:
        lines += [
            "| Verdict | Query | Traffic | What happens | Blamed migration statement |",
            "|---|---|---:|---|---|",
        ]
        for query_class in findings_list[:TOP]:
            blame = blame_text(query_class.blame) if query_class.verdict.breaking else "-"
            lines.append(
                f"| **{query_class.verdict}** | {_code(query_class.normalized)} "
                f"| {percent(query_class.share)} ({query_class.count}) "
                f"| {_cell(finding_text(query_class))} "
                f"| {_cell(blame)} |"
            )
        if len(findings_list) > TOP:
            lines.append(f"\n…and {len(findings_list) - TOP} more findings.")
        lines.append("")
    if others:
        tally = ", ".join(f"{n} {v}" for v, n in _count(others).items())
        lines += [f"Not caused by the migration: {tally}.", ""]
    if findings.schema_diff:
        changes = len(findings.schema_diff)
        lines += [f"Schema: {changes} changes between baseline and candidate.", ""]
    lines.append(f"Full report: [report.html]({report_url})")
    return "\n".join(lines) + "\n"
