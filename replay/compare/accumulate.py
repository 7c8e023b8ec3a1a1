"""Folding judged chunks of outcomes into per-class state whose size does not grow with a run.

Classification reads ``outcomes.jsonl`` a chunk at a time (see
:mod:`replay.compare.reading`); the rows every target answered alike are judged and
folded directly (:mod:`replay.compare.alike`), the others judged with the vectorised
statement rule (:func:`replay.compare.verdict.statement_verdicts`, which looks at one row
at a time), and both folded into one :class:`ClassState` per query class:

- exact counters: statements, statement verdicts (unsent as ``""``), first and last seen;
- the first ``max_examples`` rows of each statement verdict by ``(start, session, seq)``,
  whole (params, samples), from which the class's examples are chosen once its verdict
  is known (the first rows of a union are among the first rows of its parts);
- sessions, overall and per statement verdict: :class:`DistinctCounter`, exact up to
  4,096 sessions, then estimated (about 1.6 % standard error);
- application names, overall and per verdict: exact up to ``APPLICATION_LIMIT`` names per
  class, further names are not listed;
- latency of the statements both sides answered and timed (baseline, candidate, and the slower of
  the two baselines): :class:`QuantileSketch`, exact up to 2,048 statements per class,
  then within 0.5 %;
- run-wide: the baselines' timing differences (the ``slower`` rule's jitter floor), exact
  up to ``JITTER_EXACT`` statements then within 0.5 %, and cascades per class of their
  first failure (:class:`replay.compare.cascades.CascadeTracker`).

So memory follows the number of classes (and a chunk), not the number of statements.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from replay.compare.alike import AlikeFold, alike_verdict
from replay.compare.cascades import CascadeTracker
from replay.compare.reading import frame_of
from replay.compare.sketch import DistinctCounter, QuantileSketch
from replay.compare.state import (
    KEY_COLUMN,
    ROW_COLUMN,
    UNSENT,
    ClassState,
    add_application,
)
from replay.compare.verdict import Thresholds, statement_verdicts

JITTER_EXACT = 100_000


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _status(frame: pd.DataFrame, target: str) -> pd.Series:
    column = f"{target}_status"
    if column not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[column] == "ok"


class Accumulator:
    """A run's per-class state, folded one chunk of outcome rows at a time."""

    def __init__(self, thresholds: Thresholds, max_examples: int) -> None:
        self.thresholds = thresholds
        self.max_examples = max_examples
        self.classes: dict[str, ClassState] = {}
        self.statements = 0
        self.cascaded = 0
        self.unsent = 0
        self.jitter = QuantileSketch(JITTER_EXACT)
        self.cascades = CascadeTracker()

    def add_rows(self, rows: list[dict[str, Any]], origin: Path | str) -> None:
        """Judge a chunk of flat outcome rows (as written) and fold it in: the rows every
        target answered alike directly (:mod:`replay.compare.alike`), the others as a
        frame (``origin`` names them in errors)."""
        fold = AlikeFold(self.max_examples)
        limits, states = self.thresholds, self.classes
        others: list[dict[str, Any]] = []
        numbers: list[int] = []
        for number, row in enumerate(rows, self.statements):
            verdict = alike_verdict(row, limits)
            if verdict is None:
                others.append(row)
                numbers.append(number)
                continue
            fingerprint = row["fingerprint"]
            state = states.get(fingerprint)
            if state is None:
                state = self.state(fingerprint)
            fold.add(state, fingerprint, row, verdict, number)
        fold.into(states)
        if fold.jitter:
            self.jitter.add(fold.jitter)
        alike = len(rows) - len(others)
        self.statements += alike
        if others:
            self.add(frame_of(others, origin), np.asarray(numbers))

    def add(self, frame: pd.DataFrame, numbers: np.ndarray | None = None) -> None:
        """Judge a chunk of outcome rows and fold it in (``numbers``: the rows' positions
        in the run, when not the next ones)."""
        frame = frame.reset_index(drop=True)
        verdicts = statement_verdicts(frame, self.thresholds)
        rows = frame.assign(verdict=verdicts)
        rows[KEY_COLUMN] = verdicts.fillna(UNSENT)
        rows[ROW_COLUMN] = (
            numbers
            if numbers is not None
            else np.arange(self.statements, self.statements + len(frame))
        )
        cascade = (
            frame["cascade_of"].notna()
            if "cascade_of" in frame.columns
            else pd.Series(False, index=frame.index)
        )
        self.statements += len(frame)
        self.cascaded += int(cascade.sum())
        self.unsent += int((~cascade & verdicts.isna()).sum())
        self._add_jitter(frame)
        self.cascades.add(frame, cascade)
        own = rows[~cascade & rows["fingerprint"].notna()]
        if own.empty:
            return
        self._add_counts(own)
        self._add_sessions(own)
        self._add_applications(own)
        self._add_latency(own)
        self._add_examples(own)

    def merge(self, other: Accumulator) -> None:
        """Fold in the accumulator of another part of the same run (a replay worker's
        rows: whole sessions, so cascades never cross parts)."""
        for fingerprint, state in other.classes.items():
            self.state(fingerprint).merge(state, self.max_examples)
        self.statements += other.statements
        self.cascaded += other.cascaded
        self.unsent += other.unsent
        self.jitter.merge(other.jitter)
        self.cascades.merge(other.cascades)

    def state(self, fingerprint: Any) -> ClassState:
        return self.classes.setdefault(str(fingerprint), ClassState())

    def _add_jitter(self, frame: pd.DataFrame) -> None:
        both = _status(frame, "baseline") & _status(frame, "baseline2")
        if both.any():
            base = _numbers(frame, "baseline_duration")[both]
            base2 = _numbers(frame, "baseline2_duration")[both]
            self.jitter.add((base - base2).abs().to_numpy())

    def _add_counts(self, own: pd.DataFrame) -> None:
        stats = own.groupby("fingerprint").agg(
            count=("seq", "size"), first=("start", "min"), last=("start", "max")
        )
        for fingerprint, count, first, last in stats.itertuples():
            state = self.state(fingerprint)
            state.count += int(count)
            state.first = first if state.first is None else min(state.first, first)
            state.last = last if state.last is None else max(state.last, last)
        for (fingerprint, key), n in own.groupby(["fingerprint", KEY_COLUMN]).size().items():
            self.state(fingerprint).verdicts[str(key)] += int(n)

    def _add_sessions(self, own: pd.DataFrame) -> None:
        pairs = own[["fingerprint", "session"]].dropna().drop_duplicates()
        for fingerprint, sessions in pairs.groupby("fingerprint")["session"]:
            self.state(fingerprint).sessions.add(sessions)
        triples = own.loc[own[KEY_COLUMN] != UNSENT, ["fingerprint", KEY_COLUMN, "session"]]
        triples = triples.dropna().drop_duplicates()
        for (fingerprint, key), sessions in triples.groupby(["fingerprint", KEY_COLUMN])["session"]:
            counters = self.state(fingerprint).affected_sessions
            counters.setdefault(str(key), DistinctCounter()).add(sessions)

    def _add_applications(self, own: pd.DataFrame) -> None:
        names = own[["fingerprint", KEY_COLUMN, "application_name"]].drop_duplicates()
        for fingerprint, key, name in names.itertuples(index=False):
            state = self.state(fingerprint)
            add_application(state.applications, name)
            if key != UNSENT:
                add_application(state.affected_applications.setdefault(str(key), set()), name)

    def _add_latency(self, own: pd.DataFrame) -> None:
        answered = own[_status(own, "baseline") & _status(own, "candidate")]
        # Only statements timed on both sides: a pipelined statement has no duration.
        timed = (
            _numbers(answered, "baseline_duration").notna()
            & _numbers(answered, "candidate_duration").notna()
        )
        answered = answered[timed]
        if answered.empty:
            return
        base = _numbers(answered, "baseline_duration")
        cand = _numbers(answered, "candidate_duration")
        reference = base
        if "baseline2_duration" in answered.columns:
            base2 = _numbers(answered, "baseline2_duration")
            reference = pd.concat([base, base2.fillna(base)], axis=1).max(axis=1)
        arrays = (base.to_numpy(), cand.to_numpy(), reference.to_numpy())
        for fingerprint, index in answered.groupby("fingerprint").indices.items():
            state = self.state(fingerprint)
            state.baseline.add(arrays[0][index])
            state.candidate.add(arrays[1][index])
            state.reference.add(arrays[2][index])

    def _add_examples(self, own: pd.DataFrame) -> None:
        if self.max_examples <= 0:
            return
        order = ["fingerprint", KEY_COLUMN, "start", "session", "seq", ROW_COLUMN]
        first = (
            own.sort_values(order, kind="stable")
            .groupby(["fingerprint", KEY_COLUMN])
            .head(self.max_examples)
        )
        for record in first.to_dict("records"):
            seq, number = int(record["seq"]), record[ROW_COLUMN]
            sort_key = (record["start"], str(record["session"]), seq, number)
            state = self.state(record["fingerprint"])
            state.keep(str(record[KEY_COLUMN]), sort_key, record, self.max_examples)
