"""``report.html``: one self-contained page, readable in five seconds and at 2 a.m.

Top down: the verdict (safe to deploy, or what breaks and how much traffic), the two
charts, the findings worst first (then by traffic share), the classes that behave the
same, and the schema diff. Inline CSS and SVG only; no script, no font or image fetched,
so it opens from disk and as a CI artifact.

The layout is Jinja2 templates in ``replay/report/templates`` (``page.html`` and one per
part it includes), rendered with autoescape: every value from the capture, the database
or the run is text in the page, never markup. This module chooses and orders what the
page shows; :mod:`replay.report.finding_html` holds the helpers a finding's card uses.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from replay import __version__
from replay.compare import BREAKING, Findings, QueryClass, Verdict
from replay.report import finding_html
from replay.report.charts import COLORS, latency_ratios, traffic_by_verdict
from replay.report.words import (
    MEANING,
    headline,
    ms,
    one_line,
    outcome_text,
    percent,
    plural,
    subline,
)

if TYPE_CHECKING:
    import jinja2


@cache
def environment() -> jinja2.Environment:
    """The report's templates, loaded from the package once per process."""
    # Imported on first render, not at module top: the ``replay`` command imports this
    # package at start-up, and Jinja2's import (about 0.1 s) only pays off when rendering.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("replay.report", "templates"),
        autoescape=True,  # every template is HTML; captured SQL and messages stay text
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, not the page
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates are package data: no stat of each file per include
    )
    env.filters.update(
        label=verdict_label,
        one_line=one_line,
        percent=percent,
        ms=ms,
        outcome_text=outcome_text,
        when=finding_html.when,
        type_name=finding_html.type_name,
        blame_where=finding_html.blame_where,
        dumps=finding_html.dumps,
        schema_detail=schema_detail,
    )
    env.globals.update(
        meaning=MEANING,
        breaking=BREAKING,
        differing_rows=finding_html.differing_rows,
    )
    return env


def render(template: str, **context: Any) -> str:
    """``template`` from ``replay/report/templates`` rendered with ``context``."""
    return environment().get_template(template).render(**context)


def render_html(findings: Findings, *, fail_on: str = "fails") -> str:
    """The whole page for ``findings``."""
    shown = [c for c in findings.classes if c.is_finding and c.statement_verdicts]
    shown.sort(key=lambda c: (-c.verdict.severity, -c.share, c.fingerprint))
    counts = findings.by_verdict()
    charted = bool(findings.classes)
    return render(
        "page.html",
        findings=findings,
        title=headline(findings),
        subline=subline(findings),
        gate_line=gate_line(findings, fail_on),
        chips=[(v, counts[str(v)]) for v in Verdict if counts[str(v)]],
        traffic_chart=traffic_by_verdict(findings) if charted else "",
        latency_chart=latency_ratios(findings) if charted else "",
        shown=shown,
        same=[c for c in findings.classes if not c.is_finding or not c.statement_verdicts],
        version=__version__,
    )


def gate_line(findings: Findings, fail_on: str) -> str:
    """What ``--fail-on`` makes of the findings: how many classes and the exit code."""
    gate = [c for c in findings.classes if c.verdict.at_or_above(fail_on)]
    if gate:
        return f"--fail-on {fail_on}: {plural(len(gate), 'class')} at or above, exit code 1"
    return f"--fail-on {fail_on}: nothing at or above, exit code 0"


def verdict_label(verdict: Verdict | str) -> str:
    """``both_fail`` as ``both fail``: a verdict as a badge or chip shows it."""
    return str(verdict).replace("_", " ")


def schema_detail(change: dict[str, object]) -> str:
    """One schema change's detail cell: its own detail, else what it added or dropped."""
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


def finding(query_class: QueryClass) -> str:
    """The card for one non-ok class, as ``findings.html`` shows it."""
    macros = environment().get_template("finding.html").module
    return str(macros.finding(query_class))  # type: ignore[attr-defined]


__all__ = ["COLORS", "environment", "finding", "render_html"]
