"""findings.json, junit.xml and report.md for a run with a finding of every verdict."""

from __future__ import annotations

import json
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from outcome_factory import SQL, error, ok, row, write_run

from replay.compare import classify
from replay.report import FILES, write_reports
from replay.sql.fingerprint import fingerprint

with warnings.catch_warnings():
    # replay.cli registers the capture command, which imports mitmproxy, which imports
    # ldap3 and passlib, which warn once at import (pyasn1's tagMap, the crypt module):
    # third-party import-time deprecations, not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from replay.cli import ReplayGroup
    from replay.cli.report import report

# The command as the ``replay`` group runs it: its error handling maps BadInput to exit 2.
cli = ReplayGroup(commands=[report])

# The JUnit XML schema CI systems read (Jenkins' junit-10.xsd, which GitLab and the
# GitHub reporters follow): per element, its allowed and required attributes, the
# children it may hold in order with how many, and whether it carries text.
INTEGER, DECIMAL, STRING = r"-?\d+", r"\d+(\.\d{1,3})?", r".*"
JUNIT_XSD: dict[str, dict[str, object]] = {
    "testsuites": {
        "attrs": {"name": STRING, "time": DECIMAL, "tests": INTEGER, "failures": INTEGER,
                  "disabled": INTEGER, "errors": INTEGER},
        "children": [("testsuite", 0, None)],
    },
    "testsuite": {
        "attrs": {"name": STRING, "tests": INTEGER, "failures": INTEGER, "errors": INTEGER,
                  "time": DECIMAL, "disabled": INTEGER, "skipped": INTEGER,
                  "timestamp": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "hostname": STRING,
                  "id": STRING, "package": STRING, "file": STRING, "log": STRING,
                  "url": STRING, "version": STRING},
        "required": {"name", "tests"},
        "children": [("properties", 0, 1), ("testcase", 0, None), ("system-out", 0, 1),
                     ("system-err", 0, 1)],
    },
    "testcase": {
        "attrs": {"name": STRING, "assertions": STRING, "time": DECIMAL, "classname": STRING,
                  "status": STRING, "class": STRING, "file": STRING, "line": STRING},
        "required": {"name"},
        "children": [("skipped", 0, 1), ("error", 0, None), ("failure", 0, None),
                     ("system-out", 0, None), ("system-err", 0, None)],
    },
    "failure": {"attrs": {"type": STRING, "message": STRING}, "children": [], "text": True},
    "error": {"attrs": {"type": STRING, "message": STRING}, "children": [], "text": True},
    "skipped": {"attrs": {"message": STRING}, "children": [], "text": True},
    "system-out": {"attrs": {}, "children": [], "text": True},
    "system-err": {"attrs": {}, "children": [], "text": True},
}  # fmt: skip


def validate_junit(element: ET.Element) -> None:
    """Raise AssertionError where ``element`` breaks :data:`JUNIT_XSD`."""
    rule = JUNIT_XSD.get(element.tag)
    assert rule is not None, f"unknown element {element.tag}"
    attrs: dict[str, str] = rule["attrs"]  # type: ignore[assignment]
    for name, value in element.attrib.items():
        assert name in attrs, f"{element.tag} has no attribute {name}"
        assert re.fullmatch(attrs[name], value, re.S), f"{element.tag}@{name}={value!r}"
    for name in rule.get("required", set()):  # type: ignore[attr-defined]
        assert name in element.attrib, f"{element.tag} lacks {name}"
    if not rule.get("text"):
        assert not (element.text or "").strip(), f"{element.tag} holds text"
    children = list(element)
    position = 0
    for tag, least, most in rule["children"]:  # type: ignore[attr-defined]
        run = 0
        while position < len(children) and children[position].tag == tag:
            position, run = position + 1, run + 1
        assert run >= least and (most is None or run <= most), f"{element.tag}>{tag} x{run}"
    assert position == len(children), f"{element.tag} cannot hold {children[position].tag}"
    for child in children:
        validate_junit(child)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    run = write_run(tmp_path / "reports" / "shop")
    write_reports(run, classify(run))
    return run


def test_findings_json_field_by_field(folder: Path) -> None:
    findings = json.loads((folder / "findings.json").read_text())
    assert findings["version"] == 1
    summary = findings["summary"]
    assert {k: summary[k] for k in ("fails", "shape", "changed", "slower", "noisy")} == {
        "fails": 1, "shape": 1, "changed": 1, "slower": 1, "noisy": 1,
    }  # fmt: skip
    assert (summary["both_fail"], summary["fixed"], summary["ok"]) == (1, 1, 2)
    assert summary["classes"] == 9 and summary["statements"] == 26
    assert summary["safe"] is False and summary["breaking_classes"] == 3
    classes = {c["fingerprint"]: c for c in findings["classes"]}
    assert [c["verdict"] for c in findings["classes"]][:5] == [
        "fails", "shape", "changed", "slower", "noisy",
    ]  # fmt: skip
    fails = classes[fingerprint(SQL["fails"])]
    assert fails["sql"] == SQL["fails"]
    assert fails["count"] == 4
    assert fails["baseline"]["status"] == "ok" and fails["baseline"]["sqlstate"] is None
    assert fails["candidate"]["sqlstate"] == "42703"
    assert fails["candidate"]["message"] == 'column "name" does not exist'
    assert fails["blame"] is None
    both = classes[fingerprint(SQL["both_fail"])]
    assert both["baseline"]["sqlstate"] == both["candidate"]["sqlstate"] == "42P01"
    shape = classes[fingerprint(SQL["shape"])]
    assert shape["candidate"]["columns"] == [["id", 23], ["name", 25], ["nickname", 25]]
    assert [c["name"] for c in findings["schema_diff"]] == [
        "public.customers.nickname", "public.mood",
    ]  # fmt: skip
    assert findings["run"]["capture"] == "captures/shop"


def test_blame_json_is_carried_into_findings(folder: Path) -> None:
    blame = {"migration": "002_rename.sql", "statement_index": 0,
             "statement": "ALTER TABLE customers RENAME COLUMN name TO full_name"}  # fmt: skip
    (folder / "blame.json").write_text(json.dumps({fingerprint(SQL["fails"]): blame}))
    write_reports(folder, classify(folder))
    findings = json.loads((folder / "findings.json").read_text())
    assert findings["classes"][0]["blame"] == blame
    assert "002_rename.sql #1: ALTER TABLE customers RENAME" in (folder / "report.md").read_text()


def test_junit_is_valid_and_fails_at_the_level(folder: Path) -> None:
    root = ET.parse(folder / "junit.xml").getroot()
    validate_junit(root)
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 9 == int(suite.get("tests", "0")) == int(root.get("tests", "0"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("classname") for c in failed] == ["shadow-replay.fails"]
    assert suite.get("failures") == "1" and suite.get("skipped") == "1"
    failure = failed[0].find("failure")
    assert failure is not None and failure.get("type") == "fails"
    assert "42703" in (failure.get("message") or "")
    assert sum(c.find("skipped") is not None for c in cases) == 1


def test_junit_fail_on_changed_fails_three(folder: Path) -> None:
    write_reports(folder, classify(folder), fail_on="changed", formats=["junit"])
    root = ET.parse(folder / "junit.xml").getroot()
    validate_junit(root)
    assert root.get("failures") == "3"


def test_junit_survives_control_characters(tmp_path: Path) -> None:
    sql = "SELECT $1::text AS \x01odd"
    run = write_run(tmp_path / "r", [row(sql, ok(), error("22021", "bad byte \x00 here"))])
    write_reports(run, classify(run), formats=["junit"])
    validate_junit(ET.parse(run / "junit.xml").getroot())


def test_markdown_fits_a_pr_comment(folder: Path) -> None:
    text = (folder / "report.md").read_text()
    assert text.startswith("## ❌ shadow-replay: 3 query classes break, 38.5% of traffic")
    assert 'column "name" does not exist' in text
    assert "| **fails** | `SELECT id, name FROM customers WHERE id = $1`" in text
    assert "Not caused by the migration: 1 noisy, 1 both_fail, 1 fixed." in text
    assert text.rstrip().endswith("Full report: [report.html](report.html)")
    assert len(text) < 65536  # GitHub's comment limit


def test_safe_markdown(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [row(SQL["ok"], ok(), ok())])
    write_reports(run, classify(run), formats=["md"])
    assert (run / "report.md").read_text().startswith("## ✅ shadow-replay: Safe to deploy")


def test_rerendering_gives_the_same_findings(folder: Path) -> None:
    first = (folder / "findings.json").read_bytes()
    (folder / "findings.json").unlink()
    result = CliRunner().invoke(cli, ["report", str(folder)], catch_exceptions=False)
    assert result.exit_code == 1
    assert "3 query classes break" in result.output
    assert (folder / "findings.json").read_bytes() == first


def test_cli_report_exit_codes_and_formats(folder: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(folder), "--fail-on", "never", "--format", "md"])
    assert result.exit_code == 0
    result = runner.invoke(
        cli, ["report", str(folder), "--fail-on", "noisy", "--max-examples", "1"]
    )
    assert result.exit_code == 1
    findings = json.loads((folder / "findings.json").read_text())
    assert all(len(c["examples"]) <= 1 for c in findings["classes"])


@pytest.mark.parametrize(
    "args",
    [["report", "nowhere"], ["report", "{folder}", "--format", "pdf"]],
)
def test_cli_report_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    args = [a.replace("{folder}", str(write_run(tmp_path / "r"))) for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "Traceback" not in result.output


def test_cli_report_writes_only_the_chosen_formats_with_its_thresholds(folder: Path) -> None:
    for name in FILES.values():
        (folder / name).unlink()
    args = ["report", str(folder), "--format", "junit,md", "--fail-on", "slower"]
    assert CliRunner().invoke(cli, args).exit_code == 1
    assert sorted(p.name for p in folder.iterdir() if p.name in FILES.values()) == [
        "junit.xml", "report.md",
    ]  # fmt: skip
    # fails, shape, changed and the 5x slower class
    assert ET.parse(folder / "junit.xml").getroot().get("failures") == "4"
    result = CliRunner().invoke(cli, [*args, "--slower-factor", "10"])
    assert result.exit_code == 1
    assert ET.parse(folder / "junit.xml").getroot().get("failures") == "3"


@pytest.mark.parametrize(
    "option, value",
    [("--fail-on", "sometimes"), ("--max-examples", "0"), ("--slower-factor", "0.5")],
)
def test_cli_report_bad_option_value_exits_2_naming_it(
    folder: Path, option: str, value: str
) -> None:
    result = CliRunner().invoke(cli, ["report", str(folder), option, value])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and option in errors[0], result.output


def test_a_huge_statement_is_clipped_in_every_report_and_whole_in_the_outcomes(
    tmp_path: Path,
) -> None:
    """One 2 MB statement with a 1 MB parameter once made a findings.json of several times
    its size: every report format shows a bounded part, outcomes.jsonl keeps it whole."""
    huge_sql = "SELECT " + ", ".join(f"'{i:08d}'" for i in range(200_000))
    huge_param = "p" * 1_000_000
    folder = write_run(
        tmp_path / "r",
        [row(huge_sql, ok(), error("42703", "m" * 500_000), params=[huge_param])],
    )
    write_reports(folder, classify(folder))
    for name in ("findings.json", "report.md", "report.html", "junit.xml"):
        text = (folder / name).read_text()
        assert len(text) < 200_000, (name, len(text))
        if name != "report.md":  # the pull-request comment shows one line of SQL anyway
            assert "the whole text is in outcomes.jsonl" in text, name
    whole = (folder / "outcomes.jsonl").read_text()
    assert huge_sql in whole and huge_param in whole
