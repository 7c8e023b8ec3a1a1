"""``replay inspect`` and the CLI's contracts: help everywhere, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from replay.capture.format import CaptureWriter
from replay.cli import cli
from replay.model.records import ErrorInfo, Session, SessionEnd, Statement


def make_capture(folder: Path) -> None:
    with CaptureWriter(folder) as writer:
        writer.write(Session("a", 1000.0, user="u", database="d", application_name="web"))
        writer.write(Session("b", 1001.0, user="u", database="d", application_name="worker"))
        for i in range(5):
            writer.write(Statement("a", i + 1, 1000.0 + i, f"select * from t where id = {i}"))
        writer.write(
            Statement(
                "b",
                1,
                1010.0,
                "update t set x = 1",
                error=ErrorInfo("42703", "column x does not exist"),
            )
        )
        writer.write(SessionEnd("a", 1020.0, statements=5))
        writer.write(SessionEnd("b", 1020.0, statements=1, recorded=False, reason="cancel"))


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_inspect_json_has_the_contract_fields(tmp_path: Path) -> None:
    make_capture(tmp_path / "cap")
    result = invoke("inspect", str(tmp_path / "cap"), "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["statements"] == 6 and summary["sessions"] == 2
    assert summary["errors"] == 1 and summary["classes"] == 2
    assert summary["first"].startswith("1970-01-01T00:16:40")
    assert summary["last"].startswith("1970-01-01T00:16:50")
    assert summary["busiest"][0]["count"] == 5
    assert summary["applications"] == {"web": 1, "worker": 1}
    assert summary["not_recorded_sessions"] == 1


def test_inspect_narrows_to_a_window_an_app_or_a_class(tmp_path: Path) -> None:
    make_capture(tmp_path / "cap")
    window = json.loads(
        invoke(
            "inspect", str(tmp_path / "cap"), "--json", "--since", "1002", "--until", "1003.5"
        ).stdout
    )
    assert window["statements"] == 2
    by_app = json.loads(
        invoke("inspect", str(tmp_path / "cap"), "--json", "--app", "worker").stdout
    )
    assert by_app["statements"] == 1 and by_app["errors"] == 1
    fingerprint = window["busiest"][0]["fingerprint"]
    by_class = json.loads(
        invoke("inspect", str(tmp_path / "cap"), "--json", "--class", fingerprint).stdout
    )
    assert by_class["statements"] == 5
    iso = json.loads(
        invoke("inspect", str(tmp_path / "cap"), "--json", "--since", "1970-01-01T00:16:50").stdout
    )
    assert iso["statements"] == 1


def test_inspect_text_lists_the_busiest_classes(tmp_path: Path) -> None:
    make_capture(tmp_path / "cap")
    result = invoke("inspect", str(tmp_path / "cap"))
    assert result.exit_code == 0
    assert "statements   6" in result.stdout
    assert "select * from t where id = $1" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args in (
        ["inspect", str(tmp_path / "nope")],
        ["inspect", str(tmp_path), "--since", "yesterday-ish"],
        ["capture", "--upstream", "nohost", "--out", str(tmp_path / "c")],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
        assert "Traceback" not in result.output


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, command in cli.commands.items():
        assert command.help, f"replay {name} has no help text"
        result = invoke(name, "--help")
        assert result.exit_code == 0 and "Usage:" in result.stdout
        assert f"replay {name}" in readme, f"replay {name} is not documented in README.md"
