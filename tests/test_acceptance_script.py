"""The acceptance script's pure parts (acceptance/driver_suite.py), on made-up report folders.

No driver suite, server or proxy here: the script's summarizing of ``findings.json``,
``run.json``, ``outcomes.jsonl`` and pytest's junit files is what these tests pin down.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "acceptance" / "driver_suite.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("driver_suite", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["driver_suite"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def row(
    seq: int, captured: str | None, status: str, sqlstate: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "session": "s1",
        "seq": seq,
        "sql": f"select {seq}",
        "captured_sqlstate": captured,
        "baseline_status": status,
        "baseline_sqlstate": sqlstate,
        "baseline_message": "boom" if sqlstate else None,
        **extra,
    }


def test_fidelity_counts_baseline_outcomes_that_differ_from_production(script: Any) -> None:
    rows = [
        row(1, None, "ok"),
        row(2, "23505", "error", "23505"),  # production failed the same way: faithful
        row(3, None, "error", "XX000"),
        row(4, None, "error", "XX000"),
        row(5, "23505", "ok"),
        row(6, None, "error", "25P02", cascade_of=3),
        row(7, None, "error", "25P02", cascade_of=3),
        row(8, None, "timeout", "55P03"),
        row(9, None, "skipped"),
        row(10, None, "error", "25P02", cascade_of=2),  # its root got what production got
    ]
    result = script.fidelity(rows)
    assert result["statements"] == 10
    assert result["differ"] == 8
    assert result["roots"] == 5
    assert result["cascaded"] == 3
    assert result["differ_share"] == pytest.approx(8 / 10)
    assert result["roots_share"] == pytest.approx(5 / 10)
    changes = {c["change"]: (c["count"], c["knock_ons"]) for c in result["by_change"]}
    assert changes == {
        "ok -> XX000": (2, 2),
        "23505 -> ok": (1, 0),
        "ok -> timeout(55P03)": (1, 0),
        "ok -> skipped": (1, 0),
        script.FAITHFUL_ROOT: (0, 1),
    }
    first = result["by_change"][0]
    assert first["change"] == "ok -> XX000"
    assert [e["seq"] for e in first["examples"]] == [3, 4]
    assert first["examples"][0]["baseline_message"] == "boom"
    assert "- ok -> XX000: 2 (+2 cascaded), e.g. `select 3`: boom" in script.markdown(
        {
            "runs": [
                {
                    "label": "r",
                    "exit_code": 1,
                    "statements": 10,
                    "sessions": 1,
                    "classes": 1,
                    "verdicts": {},
                    "seconds": 1.0,
                    "fidelity": result,
                }
            ]
        }
    )


def test_fidelity_keeps_few_examples(script: Any) -> None:
    result = script.fidelity([row(i, None, "error", "42P01") for i in range(10)])
    assert result["by_change"][0]["count"] == 10
    assert len(result["by_change"][0]["examples"]) == script.EXAMPLES


def write_run(
    folder: Path,
    verdicts: dict[str, int],
    classes: list[dict[str, Any]],
    rows: list[dict[str, Any]],
) -> Path:
    folder.mkdir(parents=True)
    summary = {
        **dict.fromkeys(script_verdicts(), 0),
        **verdicts,
        "classes": len(classes),
        "statements": len(rows),
        "safe": True,
    }
    findings = {"version": 1, "summary": summary, "run": {}, "classes": classes}
    (folder / "findings.json").write_text(json.dumps(findings))
    (folder / "run.json").write_text(json.dumps({"counts": {"sessions": 7, "statements": 2}}))
    (folder / "outcomes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def script_verdicts() -> tuple[str, ...]:
    return ("fails", "shape", "changed", "slower", "noisy", "both_fail", "fixed", "ok")


def a_class(verdict: str, sql: str, candidate: dict[str, Any]) -> dict[str, Any]:
    return {
        "fingerprint": f"fp-{verdict}",
        "sql": sql,
        "count": 3,
        "verdict": verdict,
        "statement_verdicts": {verdict: 3},
        "baseline": {"status": "ok", "tag": "INSERT 0 1"},
        "candidate": candidate,
        "latency": {"ratio": 1.0},
    }


def test_summarize_run_reads_verdicts_false_findings_and_fidelity(
    script: Any, tmp_path: Path
) -> None:
    classes = [
        a_class(
            "fails",
            "insert into t values ($1)",
            {"status": "timeout", "sqlstate": "55P03", "message": "lock timeout"},
        ),
        a_class("noisy", "select now()", {"status": "ok", "tag": "SELECT 1"}),
    ]
    folder = write_run(
        tmp_path / "empty-1",
        {"fails": 1, "noisy": 1},
        classes,
        [row(1, None, "ok"), row(2, None, "error", "XX000")],
    )
    run = script.summarize_run(folder, "empty-1", 1, 12.34)
    assert run["statements"] == 2
    assert run["sessions"] == 7
    assert run["classes"] == 2
    assert run["verdicts"]["fails"] == 1 and run["verdicts"]["noisy"] == 1
    assert [f["verdict"] for f in run["false_findings"]] == ["fails"]
    finding = run["false_findings"][0]
    assert finding["baseline"] == "ok INSERT 0 1"
    assert finding["candidate"] == "timeout(55P03) lock timeout"
    assert run["fidelity"]["differ"] == 1
    assert run["seconds"] == 12.3
    assert not script.run_passes(run)


def test_exit_code_is_zero_only_when_no_run_has_a_false_finding(
    script: Any, tmp_path: Path
) -> None:
    clean = script.summarize_run(
        write_run(tmp_path / "a", {"noisy": 2, "both_fail": 1, "ok": 5}, [], []), "a", 0, 1.0
    )
    slower = script.summarize_run(write_run(tmp_path / "b", {"slower": 1}, [], []), "b", 0, 1.0)
    missing = script.summarize_run(tmp_path / "never-ran", "c", 2, 1.0)
    assert "error" in missing
    assert script.exit_code([clean, clean]) == 0
    assert script.exit_code([clean, slower]) == 1
    assert script.exit_code([clean, missing]) == 1
    assert script.exit_code([]) == 1
    table = script.markdown({"runs": [clean, slower, missing]})
    assert "| a | 0 | 0 | 7 | 0 |" in table
    assert "| c | 2 | no findings.json" in table


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_skip" time="0"><skipped message="x"/></testcase>
<testcase classname="tests.test_b" name="test_bad" time="0.2"><failure message="x"/></testcase>
{extra}</testsuite></testsuites>"""


def test_junit_counts_and_transparency(script: Any, tmp_path: Path) -> None:
    direct_xml, captured_xml = tmp_path / "direct.xml", tmp_path / "captured.xml"
    direct_xml.write_text(JUNIT.format(extra=""))
    captured_xml.write_text(
        JUNIT.format(
            extra='<testcase classname="tests.test_c" name="test_e"><error message="x"/></testcase>'
        )
    )
    direct, captured = script.read_junit(direct_xml), script.read_junit(captured_xml)
    assert (direct.tests, direct.passed, direct.failed, direct.skipped) == (3, 1, 1, 1)
    assert direct.not_passed == ["tests.test_b::test_bad"]
    assert captured.errors == 1
    assert script.transparency(direct, direct)["same_counts"]
    seen = script.transparency(direct, captured)
    assert not seen["same_counts"]
    assert seen["not_passed_only_through_proxy"] == ["tests.test_c::test_e"]
    assert seen["not_passed_only_directly"] == []


def test_bad_input_exits_2_before_anything_starts(script: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert script.main(["--suite", str(tmp_path), "--out", str(out)]) == 2
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("")
    assert script.main(["--suite", str(tmp_path), "--out", str(out), "--runs", "0"]) == 2
    assert not out.exists()
