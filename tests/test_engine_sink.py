"""The engine's row sink, as pure units: the engine judges nothing, and hands the rows
it writes to the sink a chunk at a time."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import replay.engine
from replay.engine import loop
from replay.engine.loop import Tally
from replay.model.outcomes import OutcomeRow, OutcomeWriter, TargetOutcome, iter_outcomes

ENGINE = Path(replay.engine.__file__).parent


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_no_engine_module_imports_the_comparison(module):
    """The engine sends and records; verdicts are the comparison's (docs/design.md)."""
    leaks = {name for name in _imported(module) if name.split(".")[:2] == ["replay", "compare"]}
    assert not leaks, f"{module.name} imports {sorted(leaks)}"


class ListSink:
    """Keeps every chunk it is handed."""

    def __init__(self) -> None:
        self.chunks: list[tuple[list[dict[str, Any]], Path | str]] = []

    def add_rows(self, rows: list[dict[str, Any]], origin: Path | str) -> None:
        self.chunks.append((list(rows), origin))

    def merge(self, other: ListSink) -> None:
        self.chunks.extend(other.chunks)


def _row(seq: int, status: str = "ok") -> OutcomeRow:
    return OutcomeRow(
        session="s1",
        seq=seq,
        start=float(seq),
        fingerprint="f1",
        sql="SELECT 1",
        outcomes={"baseline": TargetOutcome("ok"), "candidate": TargetOutcome(status)},  # type: ignore[arg-type]
    )


def test_tally_hands_the_written_rows_to_its_sink_a_chunk_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "CHUNK_ROWS", 3)
    rows = ListSink()
    with OutcomeWriter(tmp_path) as writer:
        tally = Tally(writer, rows)
        for seq in range(1, 8):
            tally.emit(_row(seq, "error" if seq == 5 else "ok"))
        assert [len(chunk) for chunk, _ in rows.chunks] == [3, 3]  # the 7th waits
        tally.fold()
    assert [len(chunk) for chunk, _ in rows.chunks] == [3, 3, 1]
    assert {origin for _, origin in rows.chunks} == {writer.path}
    handed = [row for chunk, _ in rows.chunks for row in chunk]
    assert [row["seq"] for row in handed] == list(range(1, 8))
    # The sink gets exactly what the file holds, row for row.
    assert [r.seq for r in iter_outcomes(tmp_path)] == [row["seq"] for row in handed]
    assert tally.statements == 7
    assert tally.status == {"baseline": {"ok": 7}, "candidate": {"ok": 6, "error": 1}}


def test_tally_without_a_sink_only_writes_and_counts(tmp_path):
    with OutcomeWriter(tmp_path) as writer:
        tally = Tally(writer)
        tally.emit(_row(1))
        tally.fold()
    assert tally.statements == 1
    assert [r.seq for r in iter_outcomes(tmp_path)] == [1]
