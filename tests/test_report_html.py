"""report.html in headless Chromium: it renders, shows its verdict, and fetches nothing.

Chromium (Debian's ``chromium``, which ``.ci/run`` installs where missing) loads the file
from disk under the page's own Content-Security-Policy, so any fetch or script would be
refused and logged to the console, which the test reads.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from outcome_factory import WIDER, error, ok, row, write_run

from replay.compare import classify
from replay.report import render_html, write_reports
from replay.report.finding_html import type_name

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
HOSTILE_SQL = "SELECT '<script>alert(1)</script>' AS \"<b>x</b>\""
# Breaks out of an attribute and out of a text node, whichever it lands in.
HOSTILE = 'x" onmouseover="alert(1)" \'><script>alert(2)</script>'


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is required (apt-get install -y chromium; .ci/run does it)"
    return found


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def console_errors(stderr: str) -> list[str]:
    """Lines where the page's console reported something (uncaught errors, CSP refusals)."""
    return [
        line
        for line in stderr.splitlines()
        if re.search(r"CONSOLE|Uncaught|Refused to|Content Security Policy", line)
    ]


def png_rows(path: Path, limit: int) -> tuple[int, list[bytes]]:
    """Width and the first ``limit`` unfiltered RGB(A) pixel rows of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6)
    bpp = 4 if color == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(min(limit, height)):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, [bytes(r[i : i + 3]) for r in rows for i in range(0, stride, bpp)]  # type: ignore[misc]


@pytest.fixture
def report_html(tmp_path: Path) -> Path:
    folder = write_run(tmp_path / "reports" / "shop")
    write_reports(folder, classify(folder))
    return folder / "report.html"


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "r", [row(HOSTILE_SQL, ok(), ok(digest="other"))])
    write_reports(folder, classify(folder), formats=["html"])
    page = (folder / "report.html").read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(http" not in page


def test_dom_shows_verdict_and_findings(tmp_path: Path, report_html: Path) -> None:
    done = run_chromium(tmp_path, "--dump-dom", report_html.as_uri())
    dom = done.stdout
    assert (
        '<header class="verdict unsafe" id="verdict"><h1>3 query classes break, 38.5% of traffic'
        in dom
    )
    assert 'column "name" does not exist' in dom
    assert dom.count('class="panel finding') == 7
    assert "Schema diff (2 changes)" in dom
    assert console_errors(done.stderr) == []


def test_screenshot_shows_the_verdict_banner(tmp_path: Path, report_html: Path) -> None:
    shot = tmp_path / "report.png"
    done = run_chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report_html.as_uri()
    )
    assert console_errors(done.stderr) == []
    assert shot.exists() and shot.stat().st_size > 10_000
    width, pixels = png_rows(shot, 160)
    assert width == 1280
    colors = set(pixels)
    assert len(colors) > 20, "the screenshot is blank"
    banner_red = bytes((0xC6, 0x28, 0x28))
    assert sum(p == banner_red for p in pixels) > 50_000, "no red verdict banner at the top"


def test_safe_report_is_green(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "r", [row("SELECT 1", ok(), ok(), seq=i) for i in range(3)])
    write_reports(folder, classify(folder), formats=["html"])
    done = run_chromium(tmp_path, "--dump-dom", (folder / "report.html").as_uri())
    assert '<header class="verdict safe" id="verdict"><h1>Safe to deploy</h1>' in done.stdout
    assert console_errors(done.stderr) == []


class Page(HTMLParser):
    """A page's elements (tag, attributes) and its text, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_every_captured_value_is_text_not_markup(tmp_path: Path) -> None:
    """SQL, messages, apps, sessions, parameters, columns, blame, schema names, the capture's
    name: whatever the application or database sent shows as itself and adds no element."""
    folder = write_run(
        tmp_path / "r",
        [
            row(f"SELECT 1 /* {HOSTILE} */", ok(), error("42703", HOSTILE), params=[HOSTILE],
                session=HOSTILE, application_name=HOSTILE),
            row("SELECT 2", ok(), ok(columns=WIDER)),
            row("SELECT 3", ok(digest="a"), ok(digest=HOSTILE)),
        ],
    )  # fmt: skip
    findings = classify(folder)
    findings.run["capture"] = HOSTILE
    findings.schema_diff = [dict.fromkeys(("change", "kind", "name", "detail"), HOSTILE)]
    for query_class in findings.classes:
        query_class.blame = {"migration": HOSTILE, "statement": HOSTILE}
        if query_class.column_diff:
            query_class.column_diff["added"] = [[HOSTILE, 25]]
    page = Page(render_html(findings))
    assert not [e for e in page.elements if e[0] == "script"]
    assert not [e for e in page.elements if "onmouseover" in e[1]]
    assert {"tr": {"class": f"change-{HOSTILE}"}} in [{tag: attrs} for tag, attrs in page.elements]
    texts = [t for t in page.text if HOSTILE in t]
    # sql, normalized query (twice: title and card), message (side and example), app,
    # session, parameters, column, digest, blame (migration and statement), schema diff
    # (kind, name, detail and change), the capture in the subline
    assert len(texts) >= 14, texts


@pytest.mark.parametrize(
    "oid, name",
    [(23, "integer"), (1043, "character varying"), (1184, "timestamp with time zone"),
     (1007, "integer[]"), (3807, "jsonb[]"), (650, "cidr"), (99999, "oid 99999"),
     ("25", "oid 25"), (None, "oid None")],
)  # fmt: skip
def test_type_names_come_from_the_builtin_types(oid: object, name: str) -> None:
    assert type_name(oid) == name


def test_schema_changes_are_labelled_not_painted_over(tmp_path: Path) -> None:
    """A schema diff's `changed` row once took the `changed` verdict chip's solid orange,
    which hid its own orange label: the rows keep the page's background."""
    folder = write_run(tmp_path / "r", [row("SELECT 1", ok(), ok(), seq=i) for i in range(3)])
    write_reports(folder, classify(folder), formats=["html"])
    page = (folder / "report.html").read_text()
    assert 'class="change-changed"' in page  # the fixture's schema diff has a changed row
    shot = tmp_path / "report.png"
    done = run_chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1280,1600",
        (folder / "report.html").as_uri(),
    )
    assert console_errors(done.stderr) == []
    _, pixels = png_rows(shot, 1600)
    orange = bytes((0xEF, 0x6C, 0x00))
    assert sum(p == orange for p in pixels) < 3_000, "a schema row is painted solid orange"
