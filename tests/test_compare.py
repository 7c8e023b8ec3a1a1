"""Verdicts and query classes from synthetic outcome rows (no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from outcome_factory import SQL, WIDER, error, ok, row, write_run

from replay.compare import (
    FAIL_ON_LEVELS,
    Findings,
    Thresholds,
    Verdict,
    classify,
    classify_rows,
    exit_code,
    statement_verdict,
)
from replay.errors import BadInput
from replay.model.outcomes import OutcomeWriter, TargetOutcome
from replay.sql.fingerprint import fingerprint

STATUS_OLD = json.dumps([["id", 23], ["status", 16434]])
STATUS_NEW = json.dumps([["id", 23], ["status", 17059]])
STATUS_TEXT = json.dumps([["id", 23], ["status", 25]])


@pytest.mark.parametrize(
    ("baseline", "candidate", "baseline2", "expected"),
    [
        (ok(), ok(), None, Verdict.OK),
        (ok(), error(), None, Verdict.FAILS),
        (ok(), TargetOutcome(status="timeout", sqlstate="57014"), None, Verdict.FAILS),
        (error(), ok(), None, Verdict.FIXED),
        (error(), error("42P01"), None, Verdict.BOTH_FAIL),
        (ok(), ok(columns=WIDER), None, Verdict.SHAPE),
        (ok(digest="a"), ok(digest="b"), None, Verdict.CHANGED),
        (ok(rows=1), ok(rows=2), None, Verdict.CHANGED),
        (ok(tag="UPDATE 1"), ok(tag="UPDATE 0"), None, Verdict.CHANGED),
        (ok(digest="a"), ok(digest="b"), ok(digest="c"), Verdict.NOISY),
        (ok(digest="a"), ok(digest="a"), ok(digest="c"), Verdict.NOISY),
        (ok(), error("23505"), error("23505"), Verdict.NOISY),
        # now() keeps the digests apart, but the row count is the migration's doing
        (ok(rows=2, digest="a"), ok(rows=0, digest="b"), ok(rows=2, digest="c"), Verdict.CHANGED),
        # another column shape is real even when the values are noisy
        (ok(digest="a"), ok(digest="b", columns=WIDER), ok(digest="c"), Verdict.SHAPE),
        (ok(duration=0.01), ok(duration=0.05), ok(duration=0.012), Verdict.SLOWER),
        (ok(duration=0.01), ok(duration=0.05), ok(duration=0.03), Verdict.OK),
        # 0.1 ms to 0.9 ms is nine times slower and still jitter
        (ok(duration=0.0001), ok(duration=0.0009), None, Verdict.OK),
        # a recreated enum: same names, same values, a new OID for the type
        (ok(columns=STATUS_OLD), ok(columns=STATUS_NEW), None, Verdict.OK),
        # text becoming an enum is another type for the old code
        (ok(columns=STATUS_TEXT), ok(columns=STATUS_NEW), None, Verdict.SHAPE),
    ],
)
def test_statement_verdict(
    baseline: TargetOutcome,
    candidate: TargetOutcome,
    baseline2: TargetOutcome | None,
    expected: Verdict,
) -> None:
    assert statement_verdict(row("SELECT 1", baseline, candidate, baseline2)) is expected


def test_ordered_digest_counts_only_with_top_level_order_by() -> None:
    base = TargetOutcome(status="ok", rows=2, digest="order1", digest_unordered="same")
    cand = TargetOutcome(status="ok", rows=2, digest="order2", digest_unordered="same")
    assert statement_verdict(row("SELECT id FROM t", base, cand)) is Verdict.OK
    assert statement_verdict(row("SELECT id FROM t ORDER BY id", base, cand)) is Verdict.CHANGED


def test_unsent_rows_produce_no_verdict() -> None:
    lost = TargetOutcome(status="lost")
    skipped = TargetOutcome(status="skipped")
    assert statement_verdict(row("SELECT 1", ok(), lost)) is None
    assert statement_verdict(row("SELECT 1", skipped, ok())) is None


def test_slower_factor_is_a_threshold() -> None:
    slow = row("SELECT 1", ok(duration=0.010), ok(duration=0.025))
    assert statement_verdict(slow) is Verdict.SLOWER
    assert statement_verdict(slow, Thresholds(slower_factor=3.0)) is Verdict.OK


def test_severity_order() -> None:
    ordered = sorted(Verdict, key=lambda v: -v.severity)
    assert [str(v) for v in ordered] == [
        "fails", "shape", "changed", "slower", "noisy", "both_fail", "fixed", "ok",
    ]  # fmt: skip
    assert Verdict.SHAPE.at_or_above("changed")
    assert not Verdict.SLOWER.at_or_above("changed")
    assert not Verdict.FAILS.at_or_above("never")


@pytest.fixture
def findings(tmp_path: Path) -> Findings:
    return classify(write_run(tmp_path / "run"))


def by_sql(findings: Findings, key: str) -> dict[str, object]:
    fp = fingerprint(SQL[key])
    return next(c.to_json() for c in findings.classes if c.fingerprint == fp)


def test_one_class_per_verdict(findings: Findings) -> None:
    verdicts = {c.fingerprint: c.verdict for c in findings.classes}
    for verdict in Verdict:
        assert verdicts[fingerprint(SQL[str(verdict)])] is verdict
    # the lost statement's class is ok with nothing compared; the cascade has no class
    lost = by_sql(findings, "lost")
    assert lost["verdict"] == "ok" and lost["unsent"] == 1 and lost["statement_verdicts"] == {}
    assert fingerprint(SQL["cascade"]) not in verdicts
    assert [c.verdict for c in findings.classes][:3] == [
        Verdict.FAILS, Verdict.SHAPE, Verdict.CHANGED,
    ]  # fmt: skip


def test_cascade_is_attributed_to_the_first_failure(findings: Findings) -> None:
    fails = by_sql(findings, "fails")
    assert fails["cascaded"] == 1
    assert fails["count"] == 4 and fails["broken"] == 4
    assert findings.cascaded == 1
    assert findings.broken_statements == 4 + 1 + 2 + 3  # fails + cascade, shape, changed
    assert findings.unsent == 1


def test_class_fields(findings: Findings) -> None:
    fails = by_sql(findings, "fails")
    total = findings.statements
    assert total == 26
    assert fails["share"] == round(4 / total, 6)
    assert fails["sessions"] == 2 and fails["affected_sessions"] == 2
    assert fails["applications"] == ["shop"]
    assert fails["first_seen"] == "2026-01-01T00:00:00.000+00:00"
    assert fails["last_seen"] == "2026-01-01T00:00:03.000+00:00"
    assert fails["candidate"]["sqlstate"] == "42703"  # type: ignore[index]
    assert fails["baseline"]["status"] == "ok"  # type: ignore[index]
    examples = fails["examples"]
    assert isinstance(examples, list) and len(examples) == 3
    assert examples[0]["params"] == ["0"] and examples[0]["session"] == "s1"
    assert fails["blame"] is None


def test_shape_has_a_column_diff(findings: Findings) -> None:
    shape = by_sql(findings, "shape")
    assert shape["column_diff"] == {
        "added": [["nickname", 25]], "dropped": [], "retyped": [], "reordered": False,
    }  # fmt: skip


def test_slower_is_judged_on_the_class_median(findings: Findings) -> None:
    slower = by_sql(findings, "slower")
    assert slower["latency"]["baseline_median"] == 0.01  # type: ignore[index]
    assert slower["latency"]["candidate_median"] == 0.05  # type: ignore[index]
    assert slower["latency"]["ratio"] == 5.0  # type: ignore[index]


def test_noise_downgrades_changed_in_a_class(tmp_path: Path) -> None:
    sql = "SELECT id, random() > 0.5 FROM t"
    rows = [
        row(sql, ok(digest="a"), ok(digest="b"), seq=0),  # baselines agreed by chance
        row(sql, ok(digest="a"), ok(digest="b"), ok(digest="c"), seq=1),
    ]
    findings = classify_rows([r.to_flat() for r in rows])
    assert [c.verdict for c in findings.classes] == [Verdict.NOISY]
    assert findings.safe


def test_one_slow_execution_is_not_a_slower_class() -> None:
    sql = "SELECT 1"
    rows = [row(sql, ok(), ok(), seq=i) for i in range(9)]
    rows.append(row(sql, ok(duration=0.01), ok(duration=0.5), seq=9))
    findings = classify_rows([r.to_flat() for r in rows])
    assert findings.classes[0].verdict is Verdict.OK
    assert findings.classes[0].statement_verdicts == {"ok": 9, "slower": 1}


def test_slower_than_the_baselines_differ_by_is_not_a_slower_class() -> None:
    # Three COMMITs on a busy machine: the candidate's 2 ms against 0.5 ms is more than
    # twice and more than 1 ms slower, but the two baselines differ by more than that.
    rows = [
        row("COMMIT", ok(duration=0.0005), ok(duration=0.0023), ok(duration=0.0001), seq=0),
        row("COMMIT", ok(duration=0.0016), ok(duration=0.0087), ok(duration=0.0001), seq=1),
        row("COMMIT", ok(duration=0.0001), ok(duration=0.0006), ok(duration=0.0001), seq=2),
        row("SELECT 1", ok(duration=0.0001), ok(duration=0.0001), ok(duration=0.008), seq=3),
    ]
    findings = classify_rows([r.to_flat() for r in rows])
    assert [c.verdict for c in findings.classes] == [Verdict.OK, Verdict.OK]
    # The same COMMITs with baselines that agree are slower.
    quiet = [row("COMMIT", ok(duration=0.0005), ok(duration=0.0023), seq=i) for i in range(3)]
    findings = classify_rows([r.to_flat() for r in quiet])
    assert [c.verdict for c in findings.classes] == [Verdict.SLOWER]


def test_summary_and_exit_code(findings: Findings) -> None:
    summary = findings.to_json()["summary"]
    for verdict in Verdict:
        assert summary[str(verdict)] == (2 if verdict is Verdict.OK else 1)
    assert summary["safe"] is False and summary["worst"] == "fails"
    assert summary["traffic_share_broken"] == round(10 / 26, 6)
    assert exit_code(findings, "fails") == 1
    assert exit_code(findings, "never") == 0
    with pytest.raises(BadInput):
        exit_code(findings, "bogus")
    assert "never" in FAIL_ON_LEVELS and "ok" not in FAIL_ON_LEVELS


def test_safe_run_exits_zero(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "r", [row(SQL["ok"], ok(), ok(), seq=i) for i in range(3)])
    findings = classify(folder)
    assert findings.safe and exit_code(findings, "slower") == 0
    assert findings.to_json()["summary"]["ok"] == 1


def test_run_summary_hides_target_urls(findings: Findings) -> None:
    assert "secret" not in json.dumps(findings.to_json())
    assert findings.run["migrations"][0] == {
        "name": "001_add_nickname.sql", "path": "migrations/001_add_nickname.sql", "statements": 1,
    }  # fmt: skip


def test_missing_or_empty_outcomes(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        classify(tmp_path / "nowhere")
    with pytest.raises(BadInput):
        classify(tmp_path)
    OutcomeWriter(tmp_path).close()
    with pytest.raises(BadInput, match="nothing was tested"):  # never "safe" about nothing
        classify(tmp_path)
