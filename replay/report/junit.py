"""``junit.xml``: one test case per query class, so any CI lists the classes as tests.

A class fails when its verdict is at or above ``--fail-on``; a class none of whose
statements could be compared (lost connections) is skipped; everything else passes,
with its verdict in ``system-out``. The layout follows the JUnit XML schema that
Jenkins, GitLab and the GitHub test reporters read (``testsuites`` > ``testsuite`` >
``testcase`` > ``failure``/``skipped``/``system-out``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from replay.compare import Findings, QueryClass
from replay.report.words import blame_text, finding_text, one_line, outcome_text, percent

SUITE = "shadow-replay"
# Characters XML 1.0 cannot hold (control bytes, lone surrogates from binary parameters).
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _time(query_class: QueryClass) -> str:
    """Seconds the class took on the candidate (median times count)."""
    return f"{query_class.latency.candidate_median * query_class.count:.3f}"


def _details(query_class: QueryClass) -> str:
    lines = [
        f"verdict: {query_class.verdict} ({finding_text(query_class)})",
        f"statements: {query_class.count} ({percent(query_class.share)} of traffic), "
        f"sessions: {query_class.sessions}",
        f"sql: {query_class.sql}",
        f"baseline: {outcome_text(query_class.baseline)}",
        f"candidate: {outcome_text(query_class.candidate)}",
        f"blame: {blame_text(query_class.blame)}",
    ]
    if query_class.examples:
        params = query_class.examples[0].get("params") or []
        lines.insert(3, f"params: {params}")
    return xml_text("\n".join(lines))


def _timestamp(findings: Findings) -> str | None:
    """The capture's first statement, as the schema's timezone-less ISO 8601."""
    seen = [c.first_seen for c in findings.classes if c.first_seen]
    if not seen:
        return None
    return datetime.fromisoformat(min(seen)).strftime("%Y-%m-%dT%H:%M:%S")


def render_junit(findings: Findings, *, fail_on: str = "fails") -> str:
    """The JUnit XML document for ``findings``, failing the classes at or above ``fail_on``."""
    cases: list[ET.Element] = []
    failures = skipped = 0
    for query_class in findings.classes:
        case = ET.Element(
            "testcase",
            classname=f"{SUITE}.{query_class.verdict}",
            name=xml_text(f"{query_class.fingerprint} {one_line(query_class.normalized, 160)}"),
            time=_time(query_class),
        )
        details = _details(query_class)
        if query_class.verdict.at_or_above(fail_on):
            failures += 1
            failure = ET.SubElement(
                case,
                "failure",
                message=xml_text(one_line(f"{query_class.verdict}: {finding_text(query_class)}")),
                type=str(query_class.verdict),
            )
            failure.text = details
        elif query_class.unsent == query_class.count:
            skipped += 1
            ET.SubElement(case, "skipped", message="no statement of this class was compared")
        else:
            ET.SubElement(case, "system-out").text = details
        cases.append(case)
    total_time = f"{sum(float(c.get('time') or 0) for c in cases):.3f}"
    counts = {
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": total_time,
    }
    # The schema has no ``skipped`` on ``testsuites``, only on ``testsuite``.
    root = ET.Element("testsuites", {"name": SUITE, **counts})
    del root.attrib["skipped"]
    suite_name = xml_text(f"{SUITE} {findings.run.get('capture', '')}".strip())
    suite = ET.SubElement(root, "testsuite", {"name": suite_name, **counts})
    timestamp = _timestamp(findings)
    if timestamp:
        suite.set("timestamp", timestamp)
    suite.extend(cases)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
