"""The direct fold of rows every target answered alike gives pandas' own findings."""

from __future__ import annotations

import random

import pytest
from outcome_factory import SQL, T0, every_verdict_rows, ok, row

from replay.compare import findings_of
from replay.compare.accumulate import Accumulator
from replay.compare.alike import alike_verdict
from replay.compare.reading import frame_of
from replay.compare.verdict import Thresholds, statement_verdicts
from replay.model.outcomes import OutcomeRow, TargetOutcome


def _mixed_rows(seed: int) -> list[OutcomeRow]:
    """Every verdict, and many alike rows around them: timed and not (pipelined), with
    and without a second baseline, some alike but slower, in several sessions."""
    rng = random.Random(seed)
    rows = every_verdict_rows()
    sqls = [SQL["ok"], SQL["slower"], "SELECT 1", "SELECT name FROM customers WHERE id = $1"]
    for i in range(400):
        sql = rng.choice(sqls)
        timed = rng.random() < 0.3
        base = rng.choice([0.001, 0.002, 0.0005])
        cand = base * rng.choice([1, 1, 1, 5]) if timed else None
        outcome = ok(rows=i % 3, digest=f"r{i % 3}", duration=base if timed else None)  # type: ignore[arg-type]
        candidate = ok(rows=i % 3, digest=f"r{i % 3}", duration=cand)  # type: ignore[arg-type]
        with_b2 = rng.random() < 0.5
        baseline2 = ok(rows=i % 3, digest=f"r{i % 3}", duration=base * 1.1) if with_b2 else None
        made = row(sql, outcome, candidate, baseline2, session=f"s{rng.randrange(7)}",
                   seq=1000 + i, start=T0 + rng.random() * 100,
                   application_name=rng.choice(["shop", "admin", ""]))  # fmt: skip
        if not with_b2:
            del made.outcomes["baseline2"]
        rows.append(made)
    rng.shuffle(rows)
    return rows


def _findings(rows: list[OutcomeRow], direct: bool, chunk: int) -> str:
    acc = Accumulator(Thresholds(), max_examples=3)
    flats = [r.to_flat() for r in rows]
    for at in range(0, len(flats), chunk):
        part = flats[at : at + chunk]
        if direct:
            acc.add_rows(part, "test")
        else:
            acc.add(frame_of(part, "test"))
    return findings_of(acc).dumps()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("chunk", [7, 10_000])
def test_direct_fold_gives_the_findings_of_pandas(seed: int, chunk: int) -> None:
    rows = _mixed_rows(seed)
    assert _findings(rows, direct=True, chunk=chunk) == _findings(rows, direct=False, chunk=chunk)


def test_alike_verdict_agrees_with_the_statement_rule() -> None:
    rows = [r.to_flat() for r in _mixed_rows(4)]
    judged = statement_verdicts(frame_of(rows, "test"), Thresholds())
    alike = 0
    for flat, verdict in zip(rows, judged, strict=True):
        quick = alike_verdict(flat, Thresholds())
        if quick is not None:
            alike += 1
            assert quick == verdict, flat
    assert alike > 300  # the common case is taken directly


def test_rows_that_differ_in_any_aspect_are_not_alike() -> None:
    base = ok(rows=2, digest="a")
    for other in (
        ok(rows=3, digest="a"),
        ok(rows=2, digest="b"),
        ok(rows=2, digest="a", tag="SELECT 9"),
        ok(rows=2, digest="a", columns='[["id",23]]'),
        TargetOutcome(status="error", sqlstate="42703", message="x"),
    ):
        flat = row("SELECT 1", base, other).to_flat()
        assert alike_verdict(flat, Thresholds()) is None
    # order only: the unordered digests agree but the ordered ones do not
    reordered = ok(rows=2, digest="a")
    reordered.digest = "other order"
    assert alike_verdict(row("SELECT 1", base, reordered).to_flat(), Thresholds()) is None
    assert alike_verdict(row("SELECT 1", base, ok(rows=2, digest="a")).to_flat(), Thresholds())
