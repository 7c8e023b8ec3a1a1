"""The gate never says "safe" about something it did not test (issue 13, point 2)."""

from __future__ import annotations

from pathlib import Path

from capture_builder import SessionScript, write_capture
from click.testing import CliRunner

from replay.cli import cli

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/app"


def _run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_capture_without_statements_is_bad_input_before_anything_is_cloned(
    tmp_path: Path,
) -> None:
    capture = write_capture(tmp_path / "capture", [SessionScript("s")])
    code, output = _run(
        "--capture", capture, "--source", UNREACHABLE, "--migrations", tmp_path,
        "--out", tmp_path / "report",
    )  # fmt: skip
    assert code == 2, output
    assert "nothing to replay" in output and "holds no statement" in output
    assert "Safe to deploy" not in output
    assert not (tmp_path / "report").exists()  # no empty --out folder left behind


def test_a_filter_that_matches_nothing_is_bad_input_naming_the_filter(tmp_path: Path) -> None:
    script = SessionScript("s", application_name="billing")
    script.simple("SELECT 1")
    capture = write_capture(tmp_path / "capture", [script])
    code, output = _run(
        "--capture", capture, "--source", UNREACHABLE, "--migrations", tmp_path,
        "--app", "shop", "--out", tmp_path / "report",
    )  # fmt: skip
    assert code == 2, output
    assert "nothing to replay" in output and "--app" in output


def test_report_of_a_folder_with_no_replayed_statement_is_not_safe(tmp_path: Path) -> None:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "outcomes.jsonl").write_text("")
    result = CliRunner().invoke(cli, ["report", str(folder)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "nothing was tested" in result.output
    assert "Safe to deploy" not in result.output


def test_a_missing_migrations_folder_is_said_before_anything_is_dumped(tmp_path: Path) -> None:
    script = SessionScript("s")
    script.simple("SELECT 1")
    capture = write_capture(tmp_path / "capture", [script])
    code, output = _run(
        "--capture", capture, "--source", UNREACHABLE, "--migrations", tmp_path / "nowhere",
        "--out", tmp_path / "report",
    )  # fmt: skip
    assert code == 2, output
    assert "migrations folder not found" in output  # not the unreachable source's error
    assert not (tmp_path / "report").exists()


def test_a_cloned_run_without_migrations_is_bad_input(tmp_path: Path) -> None:
    """Without --migrations or --migrate-cmd the candidate is the baseline: a "safe" from
    such a run tested nothing. An empty folder, given on purpose, stays allowed."""
    script = SessionScript("s")
    script.simple("SELECT 1")
    capture = write_capture(tmp_path / "capture", [script])
    code, output = _run(
        "--capture", capture, "--source", UNREACHABLE, "--out", tmp_path / "report"
    )  # fmt: skip
    assert code == 2, output
    assert "nothing is tested" in output
    assert not (tmp_path / "report").exists()
