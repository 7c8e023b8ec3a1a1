"""Replay outcomes: what each target answered to each captured statement.

The contract between the replay engine (writes), the comparison and the reports (read).
One line per replayed statement in ``reports/NAME/outcomes.jsonl``, flat so that
``pandas.read_json(path, lines=True)`` gives one column per field: the statement's
identity and class, then for each target (``baseline``, ``candidate``, optionally
``baseline2``) the fields of :class:`TargetOutcome` prefixed with the target's name,
e.g. ``candidate_sqlstate``. Reports re-render from this file with no database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from replay.errors import BadInput

OUTCOMES_FILE = "outcomes.jsonl"
TARGETS = ("baseline", "candidate", "baseline2")
Status = Literal["ok", "error", "timeout", "lost", "skipped"]


@dataclass(slots=True)
class TargetOutcome:
    """One target's answer to one statement.

    ``status`` is ``ok`` (a result), ``error`` (an ErrorResponse), ``timeout``
    (statement_timeout or lock_timeout cancelled it), ``lost`` (the connection broke) or
    ``skipped`` (not sent, e.g. after a lost connection until the next transaction).
    ``columns`` is a JSON list of ``[name, type_oid]`` pairs, kept as a string so that two
    targets' columns compare as one value.
    """

    status: Status
    tag: str | None = None
    rows: int | None = None
    columns: str = "[]"
    digest: str | None = None
    digest_unordered: str | None = None
    sqlstate: str | None = None
    message: str | None = None
    # Seconds; None where the statement was not timed (sent pipelined behind others).
    duration: float | None = 0.0
    # The first rows as text, kept only where the targets' rows differ (for the report's
    # row-level diff); see replay.engine.result.keep_samples_where_rows_differ.
    sample: list[list[str | None]] | None = None
    # The pipelined reader keeps the sample's DataRow bodies and the columns' binary
    # flags, made into ``sample`` only where needed; never written out.
    raw_sample: tuple[list[bytes], tuple[bool, ...]] | None = field(
        default=None, repr=False, compare=False
    )


@dataclass(slots=True)
class OutcomeRow:
    """A replayed statement with every target's outcome.

    ``cascade_of``: for an error that only cascades from an earlier failure in the same
    transaction (SQLSTATE 25P02 on a target), the ``seq`` of that first failure, so the
    comparison attributes it there instead of counting a class of its own.
    """

    session: str
    seq: int
    start: float
    fingerprint: str
    sql: str
    params: list[str | None] = field(default_factory=list)
    protocol: str = "simple"
    application_name: str = ""
    ordered: bool = False
    captured_sqlstate: str | None = None
    cascade_of: int | None = None
    outcomes: dict[str, TargetOutcome] = field(default_factory=dict)
    # Only where a parameter is binary (None otherwise, and not written): the declared
    # type OIDs and the Bind formats, so that a report can show the value as text.
    param_types: list[int] | None = None
    param_formats: list[int] | None = None

    def to_flat(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies, which costs more than the
        # rest of a row's replay; the values are plain and written out right away.
        flat: dict[str, Any] = {k: getattr(self, k) for k in _IDENTITY}
        if self.param_formats is not None:
            flat["param_types"], flat["param_formats"] = self.param_types, self.param_formats
        for target, outcome in self.outcomes.items():
            for key, flat_key in _flat_keys(target):
                value = getattr(outcome, key)
                if key != "sample" or value is not None:
                    flat[flat_key] = value
        return flat

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> OutcomeRow:
        row = cls(**{k: flat[k] for k in _IDENTITY + _BINARY_PARAMS if k in flat})
        for target in TARGETS:
            if f"{target}_status" in flat:
                fields: dict[str, Any] = {
                    k: flat.get(f"{target}_{k}") for k in _OUTCOME_FIELDS if f"{target}_{k}" in flat
                }
                row.outcomes[target] = TargetOutcome(**fields)
        return row


_IDENTITY = (
    "session",
    "seq",
    "start",
    "fingerprint",
    "sql",
    "params",
    "protocol",
    "application_name",
    "ordered",
    "captured_sqlstate",
    "cascade_of",
)
_BINARY_PARAMS = ("param_types", "param_formats")
_OUTCOME_FIELDS = tuple(f for f in TargetOutcome.__dataclass_fields__ if f != "raw_sample")


@lru_cache(maxsize=16)
def _flat_keys(target: str) -> tuple[tuple[str, str], ...]:
    return tuple((key, f"{target}_{key}") for key in _OUTCOME_FIELDS)


def part_path(folder: Path | str, part: int) -> Path:
    """Where replay worker ``part`` writes its share of the rows before the merge."""
    return Path(folder) / f"outcomes.part-{part:03d}.jsonl"


class OutcomeWriter:
    """Appends outcome rows to ``folder/outcomes.jsonl`` (or to the file of a worker's
    ``part``, see :func:`merge_parts`) as they are produced."""

    def __init__(self, folder: Path | str, part: int | None = None) -> None:
        self.path = Path(folder) / OUTCOMES_FILE if part is None else part_path(folder, part)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = self.path.open("wb")
        self.rows = 0

    def write(self, row: OutcomeRow) -> None:
        self.write_flat(row.to_flat())

    def write_flat(self, flat: dict[str, Any]) -> None:
        """Write a row already flattened (:meth:`OutcomeRow.to_flat`)."""
        # orjson: a tenth of the json module's time, on the replay's hottest path.
        self._file.write(orjson.dumps(flat, option=orjson.OPT_APPEND_NEWLINE))
        self.rows += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> OutcomeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_parts(folder: Path | str, parts: int) -> None:
    """Concatenate the part files of ``parts`` workers into ``folder/outcomes.jsonl``
    (each worker's rows in its order) and remove them. A part cut off mid-line (its
    worker died) loses only that last, incomplete row."""
    with (Path(folder) / OUTCOMES_FILE).open("wb") as out:
        for part in range(parts):
            path = part_path(folder, part)
            if not path.exists():
                continue
            with path.open("rb") as handle:
                left = _complete_length(handle)
                while left > 0 and (chunk := handle.read(min(left, 1 << 20))):
                    out.write(chunk)
                    left -= len(chunk)
            path.unlink()


def _complete_length(handle: IO[bytes]) -> int:
    """The length of the file's complete lines; leaves the file at its start."""
    end = handle.seek(0, 2)
    position = end
    while position > 0:
        start = max(0, position - 4096)
        handle.seek(start)
        block = handle.read(position - start)
        if position == end and block.endswith(b"\n"):
            break
        cut = block.rfind(b"\n")
        if cut >= 0:
            end = start + cut + 1
            break
        position = start
    else:
        end = 0
    handle.seek(0)
    return end


def outcomes_path(folder: Path | str) -> Path:
    path = Path(folder) / OUTCOMES_FILE
    if not path.exists():
        raise BadInput(f"no replay outcomes in {folder} (expected {OUTCOMES_FILE})")
    return path


def iter_outcomes(folder: Path | str) -> Iterator[OutcomeRow]:
    """Stream the saved outcome rows of a run."""
    with outcomes_path(folder).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield OutcomeRow.from_flat(json.loads(line))
