"""The fold: flat outcome rows into per-class state whose size does not grow with a run.

Classification reads ``outcomes.jsonl`` a chunk at a time (see
:mod:`replay.compare.reading`), or the replay hands over the rows as it writes them;
either way :meth:`Accumulator.add_rows` judges every row with the statement rule
(:func:`replay.compare.verdict.judge`) and folds it into one
:class:`~replay.compare.state.ClassState` per query class, in plain Python:

- exact counters: statements, statement verdicts (unsent as ``""``), first and last seen;
- the first ``max_examples`` statements of each statement verdict by
  ``(start, session, seq, position)``, as :class:`~replay.compare.examples.Example`;
- sessions, overall and per statement verdict: :class:`DistinctCounter`, exact up to
  4,096 sessions, then estimated (about 1.6 % standard error);
- application names, overall and per verdict: exact up to ``APPLICATION_LIMIT`` names per
  class, further names are not listed;
- latency of the statements both sides answered and timed (baseline, candidate, and the
  slower of the two baselines): :class:`QuantileSketch`, exact up to 2,048 statements per
  class, then within 0.5 %;
- run-wide: the baselines' timing differences (the ``slower`` rule's jitter floor), exact
  up to ``JITTER_EXACT`` statements then within 0.5 %, and cascades per class of their
  first failure (:class:`replay.compare.cascades.CascadeTracker`).

What is collected per chunk (sessions, names, timings) is handed to the bounded state once
per class at the chunk's end. So memory follows the number of classes (and a chunk), not
the number of statements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.compare.cascades import CascadeTracker
from replay.compare.cascades import Key as CascadeKey
from replay.compare.examples import example_of
from replay.compare.reading import IDENTITY_COLUMNS
from replay.compare.sketch import DistinctCounter, QuantileSketch
from replay.compare.state import UNSENT, ClassState, Kept, add_application
from replay.compare.verdict import ERROR_STATUSES, Thresholds, judge
from replay.errors import BadInput

JITTER_EXACT = 100_000
_OK_OR_NONE = ("ok", None)


@dataclass(slots=True)
class _Chunk:
    """What one chunk's rows give the bounded state, collected per class."""

    sessions: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    applications: set[tuple[str, str, str]] = field(default_factory=set)
    latency: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)
    jitter: list[float] = field(default_factory=list)
    failures: list[tuple[str, int, str]] = field(default_factory=list)
    cascades: list[CascadeKey] = field(default_factory=list)
    cascaded: int = 0
    unsent: int = 0


class Accumulator:
    """A run's per-class state, folded one chunk of flat outcome rows at a time."""

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
        """Judge a chunk of flat outcome rows (as written) and fold it in (``origin``
        names them in errors)."""
        chunk = _Chunk()
        try:
            self._fold(rows, chunk)
        except KeyError:
            missing = sorted({c for row in rows for c in IDENTITY_COLUMNS if c not in row})
            if not missing:
                raise
            raise BadInput(f"outcomes in {origin} lack the fields {', '.join(missing)}") from None
        self.statements += len(rows)
        self.cascaded += chunk.cascaded
        self.unsent += chunk.unsent
        self._close(chunk)

    def _fold(self, rows: list[dict[str, Any]], chunk: _Chunk) -> None:
        """Judge each row and fold its counters and examples into its class; collect the
        rest in ``chunk``."""
        limits, states, max_examples = self.thresholds, self.classes, self.max_examples
        sessions, applications, latency = chunk.sessions, chunk.applications, chunk.latency
        jitter = chunk.jitter
        examples = max_examples > 0
        for number, row in enumerate(rows, self.statements):
            get = row.get
            verdict = judge(row, limits)
            fingerprint = row["fingerprint"]
            base_status, base2_status = get("baseline_status"), get("baseline2_status")
            cand_status = get("candidate_status")
            base, base2 = get("baseline_duration"), get("baseline2_duration")
            answered = base_status == "ok" and cand_status == "ok"
            if base2 is not None and base is not None and base_status == base2_status == "ok":
                jitter.append(abs(base - base2))
            if (
                not (answered and base2_status in _OK_OR_NONE)
                and fingerprint is not None
                and (
                    base_status in ERROR_STATUSES
                    or cand_status in ERROR_STATUSES
                    or base2_status in ERROR_STATUSES
                )
            ):  # a possible origin of cascades
                chunk.failures.append((str(row["session"]), int(row["seq"]), str(fingerprint)))
            cascade_of = get("cascade_of")
            if cascade_of is not None:  # counted on the class of its origin
                chunk.cascaded += 1
                chunk.cascades.append((str(row["session"]), int(cascade_of)))
                continue
            if verdict is None:
                chunk.unsent += 1
                key = UNSENT
            else:
                key = verdict  # a Verdict is its name as a key (see Verdict)
            if fingerprint is None:
                continue
            if type(fingerprint) is not str:
                fingerprint = str(fingerprint)
            state = states.get(fingerprint)
            if state is None:
                state = states[fingerprint] = ClassState()
            start, session = row["start"], row["session"]
            state.count += 1
            if state.first is None or start < state.first:
                state.first = start
            if state.last is None or start > state.last:
                state.last = start
            state.verdicts[key] += 1
            if session is not None:
                if type(session) is not str:
                    session = str(session)
                pairs = sessions.get(fingerprint)
                if pairs is None:
                    pairs = sessions[fingerprint] = set()
                pairs.add((key, session))
            application = get("application_name")
            if application:
                applications.add((fingerprint, key, application))
            if answered and base is not None:
                cand = get("candidate_duration")
                # Only statements timed on both sides: a pipelined one has no duration.
                if cand is not None:
                    lists = latency.get(fingerprint)
                    if lists is None:
                        lists = latency[fingerprint] = ([], [], [])
                    lists[0].append(base)
                    lists[1].append(cand)
                    lists[2].append(base2 if base2 is not None and base2 > base else base)
            if examples:
                kept = state.examples.get(key)
                # Kept examples are in order: most rows come after the last one kept.
                if kept is not None and len(kept) >= max_examples and start > kept[-1].key[0]:
                    continue
                sort_key = (start, str(session), int(row["seq"]), number)
                if kept is None or len(kept) < max_examples or sort_key < kept[-1].key:
                    example = example_of(row, str(key) or None)
                    state.keep(key, Kept(sort_key, example), max_examples)

    def _close(self, chunk: _Chunk) -> None:
        """Hand what the chunk collected to the bounded state, once per class."""
        states = self.classes
        for fingerprint, pairs in chunk.sessions.items():
            state = states[fingerprint]
            state.sessions.add({session for _, session in pairs})
            by_verdict: dict[str, list[str]] = {}
            for key, session in pairs:
                if key != UNSENT:
                    by_verdict.setdefault(key, []).append(session)
            for key, affected in by_verdict.items():
                state.affected_sessions.setdefault(key, DistinctCounter()).add(affected)
        for fingerprint, key, application in chunk.applications:
            state = states[fingerprint]
            add_application(state.applications, application)
            if key != UNSENT:
                add_application(state.affected_applications.setdefault(key, set()), application)
        for fingerprint, (base, cand, reference) in chunk.latency.items():
            state = states[fingerprint]
            state.baseline.add(base)
            state.candidate.add(cand)
            state.reference.add(reference)
        if chunk.jitter:
            self.jitter.add(chunk.jitter)
        self.cascades.add(chunk.failures, chunk.cascades)

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
