"""``replay run`` end to end through the CLI, against real PostgreSQL clones."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import psycopg
import pytest
from capture_builder import INT4, SessionScript, write_capture
from click.testing import CliRunner

from replay.sql.fingerprint import fingerprint

with warnings.catch_warnings():
    # replay.cli imports the capture command, which imports mitmproxy -> ldap3 -> pyasn1,
    # and pyasn1 warns about ldap3's use of a deprecated name at import time.
    warnings.simplefilter("ignore", DeprecationWarning)
    from replay.cli import cli
    from replay.cli.run import run as run_command

if "run" not in cli.commands:  # registered by replay.cli.commands once merged
    cli.add_command(run_command)

SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL DEFAULT 0);
INSERT INTO items SELECT i, 'item ' || i, i FROM generate_series(1, 50) i;
"""


def replay_databases(pg_server) -> set[str]:
    with psycopg.connect(pg_server.url) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'replay%'")
        return {r[0] for r in rows}


@pytest.fixture
def source(pg_server, dsn) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return dsn


def workload(database: str = "shop") -> list[SessionScript]:
    sessions = []
    for i in range(3):
        s = SessionScript(f"s{i}", start=1_700_000_000.0 + i, database=database)
        s.extended("SELECT name, qty FROM items WHERE id = $1", [str(i + 1).encode()], types=[INT4])
        s.simple("SELECT count(*) FROM items")
        s.extended("SELECT $1 + $2", [b"1", b"2"], types=[INT4, INT4], name="add")
        sessions.append(s)
    return sessions


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, ["run", *map(str, args)], catch_exceptions=False)


def migrations(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.sql").write_text(text)
    return folder


def test_a_dropped_column_fails_and_the_clones_are_dropped(tmp_path, pg_server, source):
    capture = write_capture(tmp_path / "capture", workload())
    folder = migrations(
        tmp_path,
        **{
            "001_index": "CREATE INDEX ON items (name);",
            "002_drop": "ALTER TABLE items DROP COLUMN qty;",
        },
    )
    before = replay_databases(pg_server)
    result = invoke(
        "--capture",
        capture,
        "--source",
        source,
        "--scratch",
        pg_server.url,
        "--migrations",
        folder,
        "--out",
        tmp_path / "report",
        "--jobs",
        "2",
    )
    assert result.exit_code == 1, result.output
    assert "Replayed 9 statements of 3 sessions" in result.output
    assert replay_databases(pg_server) == before
    report = tmp_path / "report"
    findings = json.loads((report / "findings.json").read_text())
    verdicts = {c["sql"]: c["verdict"] for c in findings["classes"]}
    assert verdicts["SELECT name, qty FROM items WHERE id = $1"] == "fails"
    assert verdicts["SELECT count(*) FROM items"] == "ok"
    run = json.loads((report / "run.json").read_text())
    assert [m["name"] for m in run["migrations"]] == ["001_index.sql", "002_drop.sql"]
    assert set(run["targets"]) == {"baseline", "candidate", "baseline2"}
    schema = json.loads((report / "schema.json").read_text())
    assert "qty" in json.dumps(schema["baseline"]) and set(schema) == {"baseline", "candidate"}
    lines = (report / "outcomes.jsonl").read_text().splitlines()
    assert len(lines) == 9


def test_a_safe_migration_exits_0_without_noise_target(tmp_path, pg_server, source):
    capture = write_capture(tmp_path / "capture", workload())
    folder = migrations(tmp_path, **{"001": "ALTER TABLE items ADD COLUMN note text;"})
    result = invoke(
        "--capture",
        capture,
        "--source",
        source,
        "--scratch",
        pg_server.url,
        "--migrations",
        folder,
        "--out",
        tmp_path / "report",
        "--no-noise",
        "--schema-only",
    )
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "report" / "run.json").read_text())
    assert set(run["targets"]) == {"baseline", "candidate"}


def test_a_failing_migration_exits_2_naming_the_file(tmp_path, pg_server, source):
    capture = write_capture(tmp_path / "capture", workload())
    folder = migrations(
        tmp_path,
        **{"001_ok": "CREATE TABLE t (x int);", "002_bad": "ALTER TABLE nope ADD COLUMN y int;"},
    )
    before = replay_databases(pg_server)
    result = invoke(
        "--capture",
        capture,
        "--source",
        source,
        "--scratch",
        pg_server.url,
        "--migrations",
        folder,
        "--out",
        tmp_path / "report",
    )
    assert result.exit_code == 2
    assert "002_bad.sql" in result.output and "42P01" in result.output
    assert "Traceback" not in result.output
    assert replay_databases(pg_server) == before


def test_the_capture_source_is_refused_before_anything_is_sent(tmp_path, pg_server, source):
    database = psycopg.conninfo.conninfo_to_dict(source)["dbname"]
    upstream = f"localhost:{pg_server.port}"  # the capture named it otherwise: still the same
    capture = write_capture(tmp_path / "capture", workload(database), upstream=upstream)
    other = pg_server.dsn(pg_server.create_database())
    result = invoke(
        "--capture",
        capture,
        "--baseline",
        other,
        "--candidate",
        source,
        "--out",
        tmp_path / "report",
    )
    assert result.exit_code == 2
    assert "capture's source" in result.output
    assert not (tmp_path / "report" / "outcomes.jsonl").exists()


def test_own_targets_are_replayed_and_kept(tmp_path, pg_server, source):
    baseline, candidate = (pg_server.create_database() for _ in range(2))
    for name in (baseline, candidate):
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            conn.execute(SCHEMA)
    with psycopg.connect(pg_server.dsn(candidate), autocommit=True) as conn:
        conn.execute("ALTER TABLE items RENAME TO products")
    capture = write_capture(tmp_path / "capture", workload())
    result = invoke(
        "--capture",
        capture,
        "--baseline",
        pg_server.dsn(baseline),
        "--candidate",
        pg_server.dsn(candidate),
        "--out",
        tmp_path / "report",
        "--fail-on",
        "never",
    )
    assert result.exit_code == 0, result.output
    findings = json.loads((tmp_path / "report" / "findings.json").read_text())
    assert findings["summary"]["fails"] == 2
    assert {baseline, candidate} <= replay_databases(pg_server) | {baseline, candidate}
    for name in (baseline, candidate):
        pg_server.drop_database(name)


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give --source URL"),
        (["--source", "postgresql://x/y", "--baseline", "postgresql://x/z"], "either --source"),
        (
            [
                "--baseline",
                "postgresql://x/y",
                "--candidate",
                "postgresql://x/z",
                "--migrations",
                ".",
            ],
            "need --source",
        ),
        (["--source", "postgresql://x/y", "--since", "yesterday"], "not a time"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    capture = write_capture(tmp_path / "capture", workload())
    result = invoke("--capture", capture, "--out", tmp_path / "report", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_capture_exits_2(tmp_path):
    result = invoke(
        "--capture", tmp_path / "nope", "--source", "postgresql://x/y", "--migrations", tmp_path,
        "--out", tmp_path / "report",
    )  # fmt: skip
    assert result.exit_code == 2 and "capture not found" in result.output


def test_selection_options_narrow_what_is_replayed(tmp_path, source):
    """--since, --until, --app and --class each keep only the statements they name."""
    queries = ["SELECT count(*) FROM items", "SELECT name FROM items WHERE id = 1"]
    web = SessionScript("web", start=1_700_000_000.0, application_name="web")
    worker = SessionScript("worker", start=1_700_000_100.0, application_name="worker")
    for script in (web, worker):
        for sql in queries:
            script.simple(sql)
    capture = write_capture(tmp_path / "capture", [web, worker])
    both = [(session, sql) for session in ("web", "worker") for sql in queries]

    def replayed(name: str, *options: str) -> list[tuple[str, str]]:
        out = tmp_path / name
        args = ["--capture", capture, "--baseline", source, "--candidate", source, "--out", out]
        result = invoke(*args, "--no-noise", *options)
        assert result.exit_code == 0, result.output
        lines = (out / "outcomes.jsonl").read_text().splitlines()
        return sorted((row["session"], row["sql"]) for row in map(json.loads, lines))

    assert replayed("all") == both
    assert replayed("since", "--since", "1700000050") == [p for p in both if p[0] == "worker"]
    assert replayed("until", "--until", "2023-11-14T22:14:10Z") == [
        p for p in both if p[0] == "web"
    ]
    assert replayed("app", "--app", "worker") == [p for p in both if p[0] == "worker"]
    count = fingerprint("SELECT count(*) FROM items")
    assert replayed("class", "--class", count) == [p for p in both if p[1] == queries[0]]


@pytest.mark.parametrize(
    "option, value",
    [
        ("--jobs", "0"),
        ("--speed", "-1"),
        ("--fail-on", "sometimes"),
        ("--slower-factor", "1"),
        ("--statement-timeout", "soon"),
        ("--until", "soon"),
    ],
)
def test_a_bad_option_value_exits_2_naming_the_option(tmp_path, option, value):
    capture = write_capture(tmp_path / "capture", workload())
    out = tmp_path / "report"
    result = invoke(
        "--capture", capture, "--source", "postgresql://x/y", "--out", out, option, value
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and (option in errors[0] or repr(value) in errors[0]), result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("depth, untimed", [("1", False), ("256", True)])
def test_pipeline_depth(tmp_path, pg_server, source, depth, untimed):
    """--pipeline-depth 1 waits for every answer and times every statement; pipelined,
    only the sampled statements (the first 32 of a class, then one in 128) are timed."""
    s = SessionScript("s0", start=1_700_000_000.0)
    for i in range(200):
        s.simple(f"SELECT name FROM items WHERE id = {i % 50 + 1}")
    capture = write_capture(tmp_path / "capture", [s])
    out = tmp_path / "report"
    args = ["--capture", capture, "--baseline", source, "--candidate", source, "--out", out]
    result = invoke(*args, "--no-noise", "--pipeline-depth", depth)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    assert len(rows) == 200 and all(r["candidate_status"] == "ok" for r in rows)
    timed = [r for r in rows if r["candidate_duration"] is not None]
    assert len(timed) == (33 if untimed else 200)  # the first 32, then the 128th
    assert all(r["baseline_duration"] is not None for r in timed)


def test_pipeline_depth_must_be_positive(tmp_path):
    capture = write_capture(tmp_path / "capture", workload())
    result = invoke(
        "--capture", capture, "--source", "x", "--out", tmp_path / "r", "--pipeline-depth", "0"
    )
    assert result.exit_code == 2 and "--pipeline-depth" in result.output
