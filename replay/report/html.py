"""``report.html``: one self-contained page, readable in five seconds and at 2 a.m.

Top down: the verdict (safe to deploy, or what breaks and how much traffic), the two
charts, the findings worst first (then by traffic share), the classes that behave the
same, and the schema diff. Inline CSS and SVG only; no script, no font or image fetched,
so it opens from disk and as a CI artifact.
"""

from __future__ import annotations

from html import escape
from importlib import resources

from replay import __version__
from replay.compare import Findings, Verdict
from replay.report.charts import COLORS, latency_ratios, traffic_by_verdict
from replay.report.finding_html import finding
from replay.report.words import headline, ms, one_line, percent, plural, subline


def _css() -> str:
    return resources.files("replay.report").joinpath("templates/report.css").read_text("utf-8")


def render_html(findings: Findings, *, fail_on: str = "fails") -> str:
    """The whole page for ``findings``."""
    title = headline(findings)
    body = "".join(
        (
            _verdict(findings, fail_on),
            _charts(findings),
            _findings(findings),
            _unchanged(findings),
            _schema(findings),
            f"<footer>shadow-replay {escape(__version__)} · findings.json, report.md and "
            "junit.xml sit next to this file.</footer>",
        )
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)} · shadow-replay</title>"
        f"<style>{_css()}</style></head><body><main>{body}</main></body></html>\n"
    )


def _verdict(findings: Findings, fail_on: str) -> str:
    css = "safe" if findings.safe else "unsafe"
    counts = findings.by_verdict()
    chips = "".join(
        f'<li class="chip {v}">{counts[str(v)]} {escape(str(v).replace("_", " "))}</li>'
        for v in Verdict
        if counts[str(v)]
    )
    gate = [c for c in findings.classes if c.verdict.at_or_above(fail_on)]
    gate_line = (
        f"--fail-on {fail_on}: {plural(len(gate), 'class')} at or above, exit code 1"
        if gate
        else f"--fail-on {fail_on}: nothing at or above, exit code 0"
    )
    return (
        f'<header class="verdict {css}" id="verdict"><h1>{escape(headline(findings))}</h1>'
        f"<p>{escape(subline(findings))}</p><p>{escape(gate_line)}</p></header>"
        f'<ul class="chips">{chips}</ul>'
    )


def _charts(findings: Findings) -> str:
    if not findings.classes:
        return ""
    return (
        '<h2>Traffic by verdict</h2><div class="charts">'
        f'<div class="panel">{traffic_by_verdict(findings)}</div></div>'
        "<h2>Latency, candidate over baseline</h2>"
        f'<div class="panel">{latency_ratios(findings)}</div>'
    )


def _findings(findings: Findings) -> str:
    shown = [c for c in findings.classes if c.is_finding and c.statement_verdicts]
    shown.sort(key=lambda c: (-c.verdict.severity, -c.share, c.fingerprint))
    if not shown:
        return '<h2>Findings</h2><p class="muted">No query class behaves differently.</p>'
    return f"<h2>Findings ({len(shown)})</h2>" + "".join(finding(c) for c in shown)


def _unchanged(findings: Findings) -> str:
    same = [c for c in findings.classes if not c.is_finding or not c.statement_verdicts]
    if not same:
        return ""
    rows = "".join(
        f"<tr><td class='mono'>{escape(one_line(c.normalized, 110))}</td>"
        f"<td class='num'>{c.count}</td><td class='num'>{percent(c.share)}</td>"
        f"<td class='num'>{ms(c.latency.baseline_median)} → {ms(c.latency.candidate_median)}</td>"
        f"<td>{'not compared (connection lost)' if not c.statement_verdicts else 'same'}</td></tr>"
        for c in same
    )
    return (
        f"<h2>Query classes with the same outcome ({len(same)})</h2>"
        '<div class="panel"><table><thead><tr><th>Query</th><th class="num">Statements</th>'
        '<th class="num">Traffic</th><th class="num">Median latency</th><th></th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _schema(findings: Findings) -> str:
    changes = findings.schema_diff
    if not changes:
        return (
            '<h2>Schema diff</h2><p class="muted">No schema difference between baseline and '
            "candidate was recorded.</p>"
        )
    rows = "".join(
        f'<tr class="{escape(c["change"])}"><td>{escape(c["change"])}</td>'
        f"<td>{escape(c['kind'])}</td><td class='mono'>{escape(c['name'])}</td>"
        f"<td class='mono'>{escape(_schema_detail(c))}</td></tr>"
        for c in changes
    )
    return (
        f"<h2>Schema diff ({len(changes)} changes)</h2>"
        '<div class="panel"><table><thead><tr><th>Change</th><th>Kind</th><th>Name</th>'
        f"<th>Detail</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _schema_detail(change: dict[str, object]) -> str:
    if change.get("detail"):
        return one_line(str(change["detail"]), 240)
    item = change.get("after") if change.get("change") == "added" else change.get("before")
    if isinstance(item, dict):
        for key in ("definition", "type", "returns"):
            if item.get(key):
                return one_line(str(item[key]), 240)
    if isinstance(item, list):
        return ", ".join(map(str, item))
    return ""


__all__ = ["COLORS", "render_html"]
