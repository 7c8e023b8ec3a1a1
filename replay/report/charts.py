"""Inline SVG charts for ``report.html``: no script, no fetch, readable when printed.

Two charts, where a person would rather look than read: the captured traffic split by
verdict, and each class's candidate/baseline latency ratio on a log scale.
"""

from __future__ import annotations

import math
from html import escape

from replay.compare import Findings, QueryClass, Verdict
from replay.report.words import TIMES, one_line, percent

COLORS = {
    Verdict.FAILS: "#c62828",
    Verdict.SHAPE: "#d84315",
    Verdict.CHANGED: "#ef6c00",
    Verdict.SLOWER: "#f9a825",
    Verdict.NOISY: "#7e57c2",
    Verdict.BOTH_FAIL: "#78909c",
    Verdict.FIXED: "#00897b",
    Verdict.OK: "#43a047",
}
WIDTH = 1040


def traffic_by_verdict(findings: Findings) -> str:
    """A 100% bar of the replayed statements by their class's verdict, with a legend."""
    shares: dict[Verdict, int] = {}
    for query_class in findings.classes:
        weight = query_class.count + query_class.cascaded
        shares[query_class.verdict] = shares.get(query_class.verdict, 0) + weight
    total = sum(shares.values()) or 1
    parts: list[str] = []
    x = 0.0
    for verdict in Verdict:
        if not shares.get(verdict):
            continue
        width = WIDTH * shares[verdict] / total
        label = f"{verdict}: {percent(shares[verdict] / total)} ({shares[verdict]} statements)"
        parts.append(
            f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="32" '
            f'fill="{COLORS[verdict]}"><title>{escape(label)}</title></rect>'
        )
        x += width
    legend: list[str] = []
    lx, ly = 0, 56
    for verdict in Verdict:
        if not shares.get(verdict):
            continue
        text = f"{verdict} {percent(shares[verdict] / total)}"
        legend.append(
            f'<rect x="{lx}" y="{ly - 11}" width="12" height="12" rx="2" '
            f'fill="{COLORS[verdict]}"/><text x="{lx + 17}" y="{ly}">{escape(text)}</text>'
        )
        lx += 26 + 8 * len(text)
        if lx > WIDTH - 120:
            lx, ly = 0, ly + 22
    height = ly + 10
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" aria-label="Traffic by verdict">'
        f"<title>Replayed statements by verdict</title>{''.join(parts)}{''.join(legend)}</svg>"
    )


def latency_ratios(findings: Findings, limit: int = 12) -> str:
    """Candidate/baseline median latency per class, log scale, the furthest from 1x first."""
    measured = [c for c in findings.classes if c.latency.ratio]
    measured.sort(key=lambda c: (-abs(math.log2(c.latency.ratio or 1)), c.fingerprint))
    shown = measured[:limit]
    if not shown:
        return '<p class="muted">No class was answered by both sides, so no latency to compare.</p>'
    label_w, bar_w, row_h, span = 380, WIDTH - 380 - 80, 24, 3.0  # span: 2**±3, 1/8 to 8 times
    center = label_w + bar_w / 2

    def x_of(ratio: float) -> float:
        clamped = max(-span, min(span, math.log2(ratio)))
        return center + clamped / span * bar_w / 2

    rows: list[str] = []
    for i, query_class in enumerate(shown):
        ratio = query_class.latency.ratio or 1.0
        y = 28 + i * row_h
        x = x_of(ratio)
        color = _ratio_color(query_class, ratio, findings.slower_factor)
        label = one_line(query_class.normalized, 52)
        tip = f"{query_class.normalized}: {ratio:.2f}{TIMES} ({query_class.verdict})"
        rows.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="mono">'
            f"{escape(label)}</text>"
            f'<rect x="{min(x, center):.2f}" y="{y + 4}" width="{max(abs(x - center), 1.5):.2f}" '
            f'height="{row_h - 8}" fill="{color}"><title>{escape(tip)}</title></rect>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}">{ratio:.2f}{TIMES}</text>'
        )
    height = 28 + len(shown) * row_h + 8
    threshold = x_of(findings.slower_factor)
    axis = (
        f'<line x1="{center}" y1="20" x2="{center}" y2="{height - 4}" class="axis"/>'
        f'<line x1="{threshold:.2f}" y1="20" x2="{threshold:.2f}" y2="{height - 4}" '
        f'class="threshold"/>'
        f'<text x="{center}" y="14" text-anchor="middle">1{TIMES} (same)</text>'
        f'<text x="{threshold:.2f}" y="14" text-anchor="start" dx="4">'
        f"{findings.slower_factor:g}{TIMES} slower</text>"
        f'<text x="{label_w}" y="14">faster</text>'
    )
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" aria-label="Latency ratio per class">'
        f"<title>Candidate over baseline median latency per class</title>"
        f"{axis}{''.join(rows)}</svg>"
    )


def _ratio_color(query_class: QueryClass, ratio: float, factor: float) -> str:
    if query_class.verdict is Verdict.SLOWER or ratio >= factor:
        return COLORS[Verdict.SLOWER]
    if ratio < 1 / factor:
        return COLORS[Verdict.OK]
    return "#90a4ae"
