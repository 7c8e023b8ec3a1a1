"""The one statement rule and the one fold give the verdicts and findings the old code gave.

Before this fold there were two: rows every target answered alike were folded directly,
the others through pandas, with the statement rule written twice. ``golden/
compare_fold.json`` holds what those two folds gave (they agreed) on seeded runs of
:func:`outcome_factory.mixed_rows` and :func:`outcome_factory.rule_space_rows` (and
what the pandas fold gave on rows lacking fields): every row's statement verdict as one
letter, and the whole findings.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from outcome_factory import SQL, mixed_rows, ok, row, rule_space_rows, without_some_fields

from replay.compare import (
    Accumulator,
    Thresholds,
    classify_rows,
    findings_of,
    judge,
    statement_verdict,
)
from replay.errors import BadInput

GOLDEN = json.loads((Path(__file__).parent / "golden" / "compare_fold.json").read_text())
LETTERS = {"fails": "F", "shape": "S", "changed": "C", "slower": "L", "noisy": "N",
           "both_fail": "B", "fixed": "X", "ok": "o", "None": "-"}  # fmt: skip


def _rows(name: str) -> list[dict[str, Any]]:
    kind, seed = name.split("-")
    if kind == "mixed":
        return [r.to_flat() for r in mixed_rows(int(seed))]
    if kind == "sparse":  # rows that lack fields
        return without_some_fields(rule_space_rows(int(seed)), 4)
    return rule_space_rows(int(seed))


@pytest.mark.parametrize("name", ["mixed-1", "space-1", "space-2", "sparse-3"])
def test_the_statement_rule_gives_the_old_verdicts(name: str) -> None:
    verdicts = "".join(LETTERS[str(judge(flat, Thresholds()))] for flat in _rows(name))
    expected = GOLDEN["verdicts"][name]
    assert set(expected) == set(LETTERS.values()) or name == "mixed-1"  # every verdict
    wrong = [i for i, (a, b) in enumerate(zip(verdicts, expected, strict=True)) if a != b]
    assert not wrong, f"rows {wrong[:10]}: {verdicts[wrong[0]]} where {expected[wrong[0]]}"


@pytest.mark.parametrize("name", ["mixed-1", "space-1", "sparse-3"])
@pytest.mark.parametrize("chunk_rows", [1, 7, 10_000])
def test_the_fold_gives_the_old_findings(name: str, chunk_rows: int) -> None:
    findings = classify_rows(_rows(name), chunk_rows=chunk_rows)
    assert findings.to_json() == GOLDEN["findings"][name]


def test_workers_folds_merged_give_the_same_findings() -> None:
    # Replay workers hold whole sessions and send their accumulator through a pipe.
    rows = rule_space_rows(1)
    parts = [Accumulator(Thresholds(), 3) for _ in range(3)]
    for part, number in zip(parts, range(3), strict=True):
        mine = [r for r in rows if int(r["session"][1:]) % 3 == number]
        for at in range(0, len(mine), 50):
            part.add_rows(mine[at : at + 50], "part")
    merged = Accumulator(Thresholds(), 3)
    for part in parts:
        merged.merge(pickle.loads(pickle.dumps(part)))
    assert findings_of(merged).to_json() == GOLDEN["findings"]["space-1"]


def test_statement_verdict_takes_a_row_or_its_flat_form() -> None:
    slow = row(SQL["slower"], ok(duration=0.010), ok(duration=0.050))
    assert statement_verdict(slow) is statement_verdict(slow.to_flat()) is judge(slow.to_flat())
    assert str(judge(slow.to_flat())) == "slower"
    assert str(judge(slow.to_flat(), Thresholds(slower_factor=6.0))) == "ok"


def test_rows_without_their_identity_are_bad_input() -> None:
    flat = row("SELECT 1", ok(), ok()).to_flat()
    del flat["seq"]
    with pytest.raises(BadInput, match="lack the fields seq"):
        Accumulator(Thresholds(), 3).add_rows([flat], "outcomes.jsonl")


def test_pandas_and_numpy_are_off_the_import_path() -> None:
    # pandas took half of the start-up; numpy is imported only to answer quantiles.
    probe = "import sys, replay.cli, replay.run; print({'pandas', 'numpy'} & set(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"
