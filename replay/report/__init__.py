"""Reports of a replay run: ``report.html``, ``report.md``, ``findings.json``, ``junit.xml``.

:func:`write_reports` renders :class:`~replay.compare.Findings` into the report folder;
every format is a pure function of the findings (and ``--fail-on`` for JUnit and the
HTML's gate line), so ``replay report`` re-renders the same files from saved outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from replay.compare import FAIL_ON_LEVELS, Findings
from replay.errors import BadInput
from replay.report.html import render_html
from replay.report.junit import render_junit
from replay.report.markdown import render_markdown

FILES = {
    "html": "report.html",
    "md": "report.md",
    "json": "findings.json",
    "junit": "junit.xml",
}
FORMATS = tuple(FILES)

__all__ = ["FILES", "FORMATS", "render_html", "render_junit", "render_markdown", "write_reports"]


def write_reports(
    report_folder: Path | str,
    findings: Findings,
    *,
    fail_on: str = "fails",
    formats: Iterable[str] = ("html", "md", "json", "junit"),
    report_url: str = "report.html",
) -> dict[str, Path]:
    """Write the chosen formats into ``report_folder``; returns format → path written.

    ``report_url`` is where ``report.md`` links to the HTML (a CI artifact URL, say).
    """
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FILES]
    if unknown:
        raise BadInput(f"unknown report format {', '.join(unknown)} (one of {', '.join(FORMATS)})")
    if fail_on not in FAIL_ON_LEVELS:
        raise BadInput(f"unknown --fail-on level {fail_on!r} (one of {', '.join(FAIL_ON_LEVELS)})")
    folder = Path(report_folder)
    folder.mkdir(parents=True, exist_ok=True)
    renderers: dict[str, Callable[[], str]] = {
        "html": lambda: render_html(findings, fail_on=fail_on),
        "md": lambda: render_markdown(findings, report_url=report_url),
        "json": findings.dumps,
        "junit": lambda: render_junit(findings, fail_on=fail_on),
    }
    written: dict[str, Path] = {}
    for name in wanted:
        path = folder / FILES[name]
        path.write_text(renderers[name](), encoding="utf-8")
        written[name] = path
    return written
