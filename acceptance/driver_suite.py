"""Acceptance: replay fidelity on traffic nobody here wrote, a real driver's own test suite.

A release gate is only worth running if a migration that changes nothing gets no finding.
This script checks that on psycopg's own test suite (docs/design.md, issue 12):

1. a throwaway PostgreSQL plays production; the suite runs once directly against it and
   once through ``replay capture`` (same pass/fail counts: the proxy is transparent);
2. ``replay run`` replays the capture ``--runs`` times with an empty migration folder and
   ``--runs`` times with a harmless one (``CREATE TABLE zz_acceptance_unused (id int)``),
   default options otherwise, cloning the database as it was before the suite ran;
3. each run's verdict counts, its ``fails``/``changed``/``shape``/``slower`` classes and a
   fidelity figure (statements whose baseline outcome differs from what production got)
   go to the terminal, ``OUT/summary.json`` and ``OUT/summary.md``.

Exit 0 when every run has no ``fails``, ``changed``, ``shape`` or ``slower`` class, else 1;
2 on bad input. The command, from the repository root::

    .venv/bin/python acceptance/driver_suite.py --suite /work/ext/psycopg --out /tmp/accept \\
        [--runs 3] [--pytest-args "-x ..."] [--python SUITE_PYTHON] [--keep]

``--suite`` is a checkout of psycopg's repository (its ``tests`` folder and the
``psycopg`` and ``psycopg_pool`` packages). Without ``--python`` the suite runs in a venv
made (or reused) at ``OUT/suite-venv`` with those packages and their test extras.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATABASE = "psycopg_test"
DIRECT_DATABASE = "psycopg_direct"
# The source of every replay: the database as it was before the captured suite ran, so
# the clones start where production started (a clone made after the suite would hold the
# tables the suite left behind and fail its CREATE TABLEs).
PRISTINE_DATABASE = "psycopg_pristine"
HARMLESS_SQL = "CREATE TABLE zz_acceptance_unused (id int);\n"
FALSE_FINDINGS = ("fails", "shape", "changed", "slower")
EXAMPLES = 3
# Where a cascaded row's root statement got what production got (or was not replayed).
FAITHFUL_ROOT = "(root as in production)"


class BadInput(Exception):
    """An argument this script cannot use (exit 2)."""


# --- pure parts: reading a run's report folder and a suite's junit file ------------------


@dataclass
class SuiteResult:
    """A pytest run of the driver's suite: counts, and which tests did not pass."""

    tests: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    exit_code: int | None = None
    not_passed: list[str] = field(default_factory=list)


def read_junit(path: Path) -> SuiteResult:
    """Counts and failing test ids of a pytest ``--junitxml`` file."""
    result = SuiteResult()
    for case in ET.parse(path).getroot().iter("testcase"):
        result.tests += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            result.failed += 1
            result.not_passed.append(name)
        elif case.find("error") is not None:
            result.errors += 1
            result.not_passed.append(name)
        elif case.find("skipped") is not None:
            result.skipped += 1
        else:
            result.passed += 1
    result.not_passed.sort()
    return result


def transparency(direct: SuiteResult, captured: SuiteResult) -> dict[str, Any]:
    """Whether the suite did the same through the proxy as directly, and where not."""
    only_direct = sorted(set(direct.not_passed) - set(captured.not_passed))
    only_captured = sorted(set(captured.not_passed) - set(direct.not_passed))
    counts = ("tests", "passed", "failed", "errors", "skipped")
    return {
        "same_counts": all(getattr(direct, k) == getattr(captured, k) for k in counts),
        "not_passed_only_through_proxy": only_captured,
        "not_passed_only_directly": only_direct,
    }


def outcome_key(status: str | None, sqlstate: str | None) -> str:
    """One target's outcome as a word: ``ok``, the SQLSTATE, or the status (timeout ...)."""
    if status in (None, "ok"):
        return "ok"
    if status == "error":
        return sqlstate or "error"
    return f"{status}({sqlstate})" if sqlstate else str(status)


def fidelity(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Statements whose baseline outcome differs from what production got, by change.

    ``rows`` are the flat lines of ``outcomes.jsonl`` (replay/model/outcomes.py). The
    baseline runs the application's code on an unmigrated clone, so each difference is
    the replay's own inaccuracy (or genuine nondeterminism of the traffic). A row that
    only cascades from an earlier failure of its transaction (``cascade_of``) is counted
    under the change of that root statement, as its knock-on, not as a change of its own.
    """
    statements = 0
    roots: Counter[str] = Counter()
    knock_ons: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    root_change: dict[tuple[Any, Any], str] = {}
    cascades: list[tuple[Any, Any]] = []
    for row in rows:
        statements += 1
        captured = row.get("captured_sqlstate")
        production = outcome_key("error" if captured else "ok", captured)
        baseline = outcome_key(row.get("baseline_status"), row.get("baseline_sqlstate"))
        if production == baseline:
            continue
        if row.get("cascade_of") is not None:
            cascades.append((row.get("session"), row.get("cascade_of")))
            continue
        change = f"{production} -> {baseline}"
        roots[change] += 1
        root_change[(row.get("session"), row.get("seq"))] = change
        kept = examples.setdefault(change, [])
        if len(kept) < EXAMPLES:
            kept.append(
                {
                    "session": row.get("session"),
                    "seq": row.get("seq"),
                    "sql": _short(str(row.get("sql", ""))),
                    "baseline_message": _short(str(row.get("baseline_message") or "")),
                }
            )
    for root in cascades:
        knock_ons[root_change.get(root, FAITHFUL_ROOT)] += 1
    differ = sum(roots.values()) + len(cascades)
    order = sorted(set(roots) | set(knock_ons), key=lambda c: (-roots[c], -knock_ons[c], c))
    return {
        "statements": statements,
        "differ": differ,
        "differ_share": _share(differ, statements),
        "roots": sum(roots.values()),
        "roots_share": _share(sum(roots.values()), statements),
        "cascaded": len(cascades),
        "by_change": [
            {
                "change": c,
                "count": roots[c],
                "knock_ons": knock_ons[c],
                "examples": examples.get(c, []),
            }
            for c in order
        ],
    }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def false_findings(findings: dict[str, Any]) -> list[dict[str, Any]]:
    """The classes of ``findings.json`` whose verdict would stop a harmless migration."""
    kept = []
    for entry in findings.get("classes", []):
        if entry.get("verdict") not in FALSE_FINDINGS:
            continue
        kept.append(
            {
                "verdict": entry["verdict"],
                "fingerprint": entry.get("fingerprint"),
                "sql": _short(str(entry.get("sql", ""))),
                "count": entry.get("count"),
                "statement_verdicts": entry.get("statement_verdicts", {}),
                "baseline": _outcome_text(entry.get("baseline") or {}),
                "candidate": _outcome_text(entry.get("candidate") or {}),
                "latency_ratio": (entry.get("latency") or {}).get("ratio"),
            }
        )
    return kept


def summarize_run(folder: Path, label: str, exit_code: int, seconds: float) -> dict[str, Any]:
    """One replay run, from its report folder: counts, verdicts, false findings, fidelity."""
    summary: dict[str, Any] = {
        "label": label,
        "folder": str(folder),
        "exit_code": exit_code,
        "seconds": round(seconds, 1),
    }
    findings_path = folder / "findings.json"
    if not findings_path.exists():
        summary["error"] = "no findings.json (the run did not finish; see its log)"
        return summary
    findings = json.loads(findings_path.read_text(encoding="utf-8"))
    run_path = folder / "run.json"
    counts = json.loads(run_path.read_text(encoding="utf-8"))["counts"] if run_path.exists() else {}
    verdicts = {k: v for k, v in findings["summary"].items() if k in _VERDICTS}
    summary.update(
        statements=findings["summary"].get("statements"),
        sessions=counts.get("sessions"),
        classes=findings["summary"].get("classes"),
        verdicts=verdicts,
        false_findings=false_findings(findings),
        fidelity=fidelity(_outcome_rows(folder / "outcomes.jsonl")),
    )
    return summary


_VERDICTS = ("fails", "shape", "changed", "slower", "noisy", "both_fail", "fixed", "ok")


def run_passes(run: dict[str, Any]) -> bool:
    """A run passes when it finished and no class has a breaking or slower verdict."""
    return "error" not in run and not any(run["verdicts"].get(v, 0) for v in FALSE_FINDINGS)


def exit_code(runs: list[dict[str, Any]]) -> int:
    return 0 if runs and all(run_passes(run) for run in runs) else 1


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: one table row per run, then its findings and fidelity."""
    lines = [
        "| run | exit | statements | sessions | classes | "
        + " | ".join(_VERDICTS)
        + " | baseline ≠ production: roots + cascaded | seconds |",
        "|" + "---|" * (len(_VERDICTS) + 7),
    ]
    for run in summary["runs"]:
        if "error" in run:
            lines.append(f"| {run['label']} | {run['exit_code']} | {run['error']} |")
            continue
        fid = run["fidelity"]
        share = f"{fid['roots']} ({100 * fid['roots_share']:.2f}%) + {fid['cascaded']} cascaded"
        cells = [
            run["label"],
            run["exit_code"],
            run["statements"],
            run["sessions"],
            run["classes"],
            *(run["verdicts"].get(v, 0) for v in _VERDICTS),
            share,
            run["seconds"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    for run in summary["runs"]:
        for finding in run.get("false_findings", []):
            lines.append(
                f"\n**{run['label']}: {finding['verdict']}** x{finding['count']} "
                f"`{finding['sql']}` — baseline {finding['baseline']}, "
                f"candidate {finding['candidate']}"
            )
    if summary["runs"] and "fidelity" in summary["runs"][0]:
        lines.append(f"\nBaseline ≠ production in {summary['runs'][0]['label']}:\n")
        for change in summary["runs"][0]["fidelity"]["by_change"]:
            text = f"- {change['change']}: {change['count']}"
            if change["knock_ons"]:
                text += f" (+{change['knock_ons']} cascaded)"
            if change["examples"]:
                example = change["examples"][0]
                message = example["baseline_message"]
                text += f", e.g. `{example['sql']}`" + (f": {message}" if message else "")
            lines.append(text)
    return "\n".join(lines) + "\n"


def _outcome_rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _outcome_text(outcome: dict[str, Any]) -> str:
    key = outcome_key(outcome.get("status"), outcome.get("sqlstate"))
    if key != "ok":
        return f"{key} {_short(str(outcome.get('message') or ''), 80)}".strip()
    return f"ok {outcome.get('tag') or ''}".strip()


def _short(text: str, width: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- the edges: servers, the suite, replay runs -------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        _check(args)
    except BadInput as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    summary = accept(args)
    out: Path = args.out
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(markdown(summary), encoding="utf-8")
    print(markdown(summary))
    print(
        f"transparent proxy: {summary['transparency']['same_counts']}; "
        f"phases (s): {summary['phases']}"
    )
    return exit_code(summary["runs"])


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--suite", type=Path, required=True, help="psycopg checkout")
    parser.add_argument("--out", type=Path, required=True, help="working and result folder")
    parser.add_argument("--runs", type=int, default=3, help="replays per migration")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments")
    parser.add_argument("--python", type=Path, help="interpreter that has the suite's deps")
    parser.add_argument("--keep", action="store_true", help="keep capture and run folders")
    return parser.parse_args(argv)


def _check(args: argparse.Namespace) -> None:
    if not (args.suite / "tests" / "conftest.py").exists():
        raise BadInput(f"{args.suite} has no tests/conftest.py: not a psycopg checkout")
    if args.runs < 1:
        raise BadInput("--runs must be at least 1")
    if args.python is not None and not args.python.exists():
        raise BadInput(f"--python {args.python} does not exist")
    try:
        shlex.split(args.pytest_args)
    except ValueError as exc:
        raise BadInput(f"--pytest-args: {exc}") from None


def accept(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase in order; the summary as written to summary.json."""
    from replay.targets.server import EmbeddedServer

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}
    clock = time.monotonic()
    python = args.python or _suite_venv(args.suite.resolve(), out)
    phases["suite venv"] = round(time.monotonic() - clock, 1)
    production = EmbeddedServer().start()
    try:
        for name in (PRISTINE_DATABASE, DIRECT_DATABASE):
            _create_database(production.url(), name)
        _create_database(production.url(), DATABASE, template=PRISTINE_DATABASE)
        extra = shlex.split(args.pytest_args)
        clock = time.monotonic()
        direct = _run_suite(
            python, args.suite, production.url(DIRECT_DATABASE), out, "direct", extra
        )
        phases["suite direct"] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()
        captured = _captured_suite(python, args.suite, production, out, extra)
        phases["suite through capture"] = round(time.monotonic() - clock, 1)
        runs = []
        for label, migration in (("empty", ""), ("harmless", HARMLESS_SQL)):
            migrations = out / f"migrations-{label}"
            shutil.rmtree(migrations, ignore_errors=True)
            migrations.mkdir()
            if migration:
                (migrations / "001_harmless.sql").write_text(migration, encoding="utf-8")
            for index in range(1, args.runs + 1):
                run = _replay(
                    out, production.url(PRISTINE_DATABASE), migrations, f"{label}-{index}"
                )
                phases[f"replay {run['label']}"] = run["seconds"]
                runs.append(run)
                print(f"{run['label']}: exit {run['exit_code']}, {run.get('verdicts')}", flush=True)
    finally:
        production.stop()
    if not args.keep:
        for run in runs:
            shutil.rmtree(run["folder"], ignore_errors=True)
        shutil.rmtree(out / "capture", ignore_errors=True)
    return {
        "suite": str(args.suite),
        "pytest_args": args.pytest_args,
        "runs_per_migration": args.runs,
        "suite_direct": asdict(direct),
        "suite_captured": asdict(captured),
        "transparency": transparency(direct, captured),
        "runs": runs,
        "phases": phases,
        "passed": exit_code(runs) == 0,
    }


def _suite_venv(suite: Path, out: Path) -> Path:
    """A venv with psycopg and psycopg_pool from the checkout and their test extras."""
    venv = out / "suite-venv"
    python = venv / "bin" / "python"
    marker = venv / ".acceptance-installed"
    if marker.exists() and marker.read_text() == str(suite):
        return python
    print(f"making {venv} (psycopg from {suite})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    # Not editable: an editable psycopg loses to the checkout's own psycopg/ folder, which
    # the suite's rootdir puts on sys.path and Python then imports as a namespace package.
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            f"{suite / 'psycopg'}[test]",
            str(suite / "psycopg_pool"),
        ],
        check=True,
    )
    marker.write_text(str(suite))
    return python


def _create_database(url: str, name: str, template: str | None = None) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def _run_suite(
    python: Path, suite: Path, dsn: str, out: Path, label: str, extra: list[str]
) -> SuiteResult:
    """The driver's suite against ``dsn``, in the checkout, its output in OUT/suite-LABEL.log."""
    junit = out / f"suite-{label}.xml"
    junit.unlink(missing_ok=True)
    # The whole suite, unless the extra arguments name test files or folders of it.
    paths = [] if any(arg.startswith("tests") for arg in extra) else ["tests"]
    command = [
        str(python),
        "-m",
        "pytest",
        *paths,
        "--test-dsn",
        dsn,
        "-q",
        # One order for both runs (pytest-randomly would shuffle each differently).
        "-p",
        "no:randomly",
        "-o",
        f"cache_dir={out / 'pytest-cache'}",
        f"--junitxml={junit}",
        *extra,
    ]
    print(f"suite {label}: {shlex.join(command)}", flush=True)
    started = time.monotonic()
    with (out / f"suite-{label}.log").open("wb") as log:
        proc = subprocess.run(command, cwd=suite, stdout=log, stderr=subprocess.STDOUT)
    result = read_junit(junit) if junit.exists() else SuiteResult()
    result.seconds = round(time.monotonic() - started, 1)
    result.exit_code = proc.returncode
    print(
        f"suite {label}: exit {proc.returncode}, {result.passed} passed, {result.failed} "
        f"failed, {result.errors} errors, {result.skipped} skipped",
        flush=True,
    )
    return result


def _captured_suite(
    python: Path, suite: Path, production: Any, out: Path, extra: list[str]
) -> SuiteResult:
    from replay.capture.process import CaptureProcess

    capture = out / "capture"
    shutil.rmtree(capture, ignore_errors=True)
    proxy = CaptureProcess(f"{production.host}:{production.port}", capture)
    proxy.start()
    try:
        result = _run_suite(python, suite, proxy.url(DATABASE), out, "captured", extra)
    finally:
        # SIGINT, as a user's Ctrl-C: the capture is flushed and closed.
        (out / "capture.log").write_text(proxy.stop(), encoding="utf-8")
    return result


def _replay(out: Path, source: str, migrations: Path, label: str) -> dict[str, Any]:
    folder = out / "runs" / label
    shutil.rmtree(folder, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "replay",
        "run",
        "--capture",
        str(out / "capture"),
        "--source",
        source,
        "--migrations",
        str(migrations),
        "--out",
        str(folder),
    ]
    started = time.monotonic()
    log = out / f"replay-{label}.log"
    with log.open("wb") as handle:
        proc = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    return summarize_run(folder, label, proc.returncode, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
