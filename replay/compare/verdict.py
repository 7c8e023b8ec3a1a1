"""Verdicts: what one replayed statement's outcomes say about the migration.

A statement is judged from its flat outcome row (see :mod:`replay.outcomes`): the
baseline's answer against the candidate's, with the second baseline (when the run has
one) telling what differs between two identical databases anyway: ``now()``,
``random()``, sequences, concurrency. Such differences are ``noisy`` and never blamed
on the migration.

Severity, worst first, is the order of :class:`Verdict`'s members::

    fails > shape > changed > slower > noisy > both_fail > fixed > ok

A class takes the worst verdict of its statements, and ``--fail-on LEVEL`` fails a run
when any class is at or above LEVEL. ``fails``, ``shape`` and ``changed`` are the
*breaking* verdicts: the old code gets an error, other columns or other rows. ``slower``
is a finding worth reading but not breaking; ``noisy``, ``both_fail`` and ``fixed`` are
shown for completeness and are not the migration's fault.

The judging is vectorised over a DataFrame so that a capture of millions of statements
is judged in one pass; :func:`statement_verdict` is the same rule for one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from replay.outcomes import OutcomeRow


class Verdict(StrEnum):
    """A statement's or a query class's verdict, declared worst first."""

    FAILS = "fails"
    SHAPE = "shape"
    CHANGED = "changed"
    SLOWER = "slower"
    NOISY = "noisy"
    BOTH_FAIL = "both_fail"
    FIXED = "fixed"
    OK = "ok"

    @property
    def severity(self) -> int:
        """Higher is worse: ``ok`` is 0, ``fails`` is 7."""
        return len(_ORDER) - 1 - _ORDER.index(self)

    @property
    def breaking(self) -> bool:
        """Whether the old code gets an error, other columns or other rows."""
        return self in BREAKING

    def at_or_above(self, level: str) -> bool:
        """Whether this verdict reaches a ``--fail-on`` level (``never`` is never reached)."""
        if level == NEVER:
            return False
        return self.severity >= Verdict(level).severity


_ORDER = list(Verdict)
BREAKING = frozenset({Verdict.FAILS, Verdict.SHAPE, Verdict.CHANGED})
NEVER = "never"
FAIL_ON_LEVELS = (*(v.value for v in Verdict if v is not Verdict.OK), NEVER)
ERROR_STATUSES = ("error", "timeout")
UNSENT_STATUSES = ("skipped", "lost")
_ASPECTS = ("tag", "rows", "digest")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How much slower is ``slower``.

    The candidate must take more than ``slower_factor`` times the slower of the two
    baselines, and more than ``slower_min_seconds`` longer, so that sub-millisecond
    jitter on a fast statement is not a finding.
    """

    slower_factor: float = 2.0
    slower_min_seconds: float = 0.001


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name].astype(object).where(frame[name].notna(), None)
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _differs(a: pd.Series, b: pd.Series) -> pd.Series:
    """Elementwise ``a != b`` where two missing values are equal."""
    return (a != b) & ~(a.isna() & b.isna())


def target_view(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """One target's fields, with the digest that applies to each statement as ``digest``.

    The ordered digest counts only where the statement has a top-level ORDER BY;
    otherwise the same rows in another order are the same result.
    """
    ordered = _column(frame, "ordered").fillna(False).astype(bool)
    fields = ("status", "tag", "rows", "columns", "sqlstate", "duration")
    view = pd.DataFrame({name: _column(frame, f"{target}_{name}") for name in fields})
    view["digest"] = _column(frame, f"{target}_digest").where(
        ordered, _column(frame, f"{target}_digest_unordered")
    )
    view["duration"] = pd.to_numeric(view["duration"], errors="coerce").fillna(0.0)
    return view


def statement_verdicts(frame: pd.DataFrame, thresholds: Thresholds | None = None) -> pd.Series:
    """The verdict of every row of an outcomes frame, ``None`` where nothing was compared.

    Rows where the baseline or the candidate was ``skipped`` or ``lost`` (a broken
    connection, not an answer) get ``None`` and produce no finding.
    """
    limits = thresholds or Thresholds()
    base, cand, base2 = (target_view(frame, t) for t in ("baseline", "candidate", "baseline2"))
    unsent = base["status"].isin(UNSENT_STATUSES) | cand["status"].isin(UNSENT_STATUSES)
    unsent |= base["status"].isna() | cand["status"].isna()
    has_b2 = base2["status"].notna() & ~base2["status"].isin(UNSENT_STATUSES)

    base_err = base["status"].isin(ERROR_STATUSES)
    cand_err = cand["status"].isin(ERROR_STATUSES)
    base2_err = base2["status"].isin(ERROR_STATUSES)
    both_ok = ~base_err & ~cand_err
    b2_ok = has_b2 & ~base2_err

    noisy_status = has_b2 & (base_err != base2_err)
    # An aspect changed only if the two baselines agree on it: a row count that moves
    # while now() keeps the digests apart is still the migration's doing.
    changed = pd.Series(False, index=frame.index)
    noisy_result = pd.Series(False, index=frame.index)
    for aspect in _ASPECTS:
        baseline_noise = b2_ok & _differs(base[aspect], base2[aspect])
        changed |= _differs(base[aspect], cand[aspect]) & ~baseline_noise
        noisy_result |= baseline_noise
    columns_noise = b2_ok & _differs(base["columns"], base2["columns"])
    shape = _differs(base["columns"], cand["columns"]) & ~columns_noise
    noisy_result |= columns_noise

    reference = np.where(b2_ok, np.maximum(base["duration"], base2["duration"]), base["duration"])
    slower = (cand["duration"] > limits.slower_factor * reference) & (
        cand["duration"] - reference > limits.slower_min_seconds
    )

    conditions = [
        unsent,
        noisy_status,
        ~base_err & cand_err,
        base_err & ~cand_err,
        base_err & cand_err,
        both_ok & shape,
        both_ok & changed,
        both_ok & slower,
        both_ok & noisy_result,
    ]
    choices = [
        "",
        Verdict.NOISY,
        Verdict.FAILS,
        Verdict.FIXED,
        Verdict.BOTH_FAIL,
        Verdict.SHAPE,
        Verdict.CHANGED,
        Verdict.SLOWER,
        Verdict.NOISY,
    ]
    picked = np.select(
        [c.to_numpy(dtype=bool) for c in conditions],
        [str(c) for c in choices],
        default=str(Verdict.OK),
    )
    verdicts = pd.Series(picked, index=frame.index, dtype=object)
    return verdicts.where(verdicts != "", None)


def statement_verdict(row: OutcomeRow, thresholds: Thresholds | None = None) -> Verdict | None:
    """The verdict of one outcome row, by the same rule as :func:`statement_verdicts`."""
    frame = pd.DataFrame([row.to_flat()])
    value = statement_verdicts(frame, thresholds).iloc[0]
    return None if value is None else Verdict(value)
