"""``replay demo`` end to end, through the real CLI, as a newcomer runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest


def servers_under(folder: Path) -> list[int]:
    """PostgreSQL postmasters whose data directory lies under ``folder``."""
    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(folder) in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.slow  # replay demo starts its own servers, in a subprocess
def test_demo_finds_each_breaking_migration_and_blames_it(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"  # every server the demo starts lives in here
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "replay", "demo"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    # The gate's exit code, as the report says: the bundled migrations break the old code.
    assert done.returncode == 1, done.stderr
    assert "exit code 1" in (tmp_path / "reports" / "demo" / "report.html").read_text()
    assert "query classes break" in done.stdout
    assert "reports/demo/report.html" in done.stdout

    findings = json.loads((tmp_path / "reports" / "demo" / "findings.json").read_text())
    assert findings["summary"]["safe"] is False
    by_sql = {c["sql"]: c for c in findings["classes"]}

    insert = next(c for sql, c in by_sql.items() if sql.startswith("INSERT INTO links"))
    assert insert["verdict"] == "fails" and insert["candidate"]["sqlstate"] == "23502"
    assert insert["blame"]["migration"] == "003_add_title.sql"
    assert "DROP DEFAULT" in insert["blame"]["statement"]

    account = by_sql["SELECT id, email FROM owners WHERE id = $1"]
    assert account["verdict"] == "fails" and account["candidate"]["sqlstate"] == "42703"
    assert account["blame"]["migration"] == "002_rename_email.sql"
    assert "RENAME COLUMN email" in account["blame"]["statement"]

    preview = by_sql["SELECT code, target_url FROM links WHERE id = $1"]
    assert preview["verdict"] == "changed"
    assert preview["blame"]["migration"] == "004_www_redirects.sql"
    # The first differing rows are kept for the report's row-level diff.
    assert "https://www.example.com/" in preview["candidate"]["sample"][0][1]
    assert "https://example.com/" in preview["baseline"]["sample"][0][1]

    # The safe migration (an index) is blamed for nothing.
    assert all(
        c["blame"] is None or c["blame"]["migration"] != "001_index_recent_links.sql"
        for c in findings["classes"]
    )
    # Nothing the demo started is left running.
    assert servers_under(scratch) == []
    assert not any(scratch.iterdir())
