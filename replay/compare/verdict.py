"""Verdicts: what one replayed statement's outcomes say about the migration.

A statement is judged from its flat outcome row (see :mod:`replay.model.outcomes`): the
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

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
import pandas as pd

from replay.model.outcomes import OutcomeRow


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
# PostgreSQL's FirstNormalObjectId: OIDs below it are the built-in types, the same in
# every database; OIDs from it on are assigned as objects are created.
FIRST_USER_OID = 16384
USER_TYPE = "user type"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How much slower is ``slower``.

    The candidate must take more than ``slower_factor`` times the slower of the two
    baselines, and more than ``slower_min_seconds`` longer, so that sub-millisecond
    jitter on a fast statement is not a finding. A query class's margin is also at
    least what the two baselines of the run differ by (see
    :func:`replay.compare.classes.baseline_jitter`).
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


@lru_cache(maxsize=4096)
def comparable_columns(columns: str | None) -> str | None:
    """A result's columns (JSON ``[[name, type_oid], ...]``) as shapes are compared.

    A built-in type's OID is its identity everywhere, but a user-defined type's (an enum,
    a domain, a composite) is only the order it was created in: two restores of one dump
    give it different OIDs, and a migration that recreates an enum without one value
    gives the same type name, the same text values, a new OID. So user-defined OIDs are
    compared as "a user type": the old code still gets columns of the same names and of
    a type of the same name. A change from a built-in type to a user type (text to an
    enum) is still a shape change, and other values still show in the digests. What is
    not seen is a column moving from one user-defined type to another with the same
    values: telling those apart needs the type names, which outcomes do not record.
    """
    if not columns:
        return columns
    try:
        parsed = json.loads(columns)
    except ValueError:
        return columns
    if not isinstance(parsed, list):
        return columns
    user = [
        isinstance(c, list) and len(c) == 2 and isinstance(c[1], int) and c[1] >= FIRST_USER_OID
        for c in parsed
    ]
    if not any(user):
        return columns
    return json.dumps([[c[0], USER_TYPE] if u else c for c, u in zip(parsed, user, strict=True)])


def target_view(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """One target's fields, with the digest that applies to each statement as ``digest``.

    The ordered digest counts only where the statement has a top-level ORDER BY;
    otherwise the same rows in another order are the same result. Columns are as
    :func:`comparable_columns` makes them.
    """
    ordered = _column(frame, "ordered").fillna(False).astype(bool)
    fields = ("status", "tag", "rows", "columns", "sqlstate", "duration")
    view = pd.DataFrame({name: _column(frame, f"{target}_{name}") for name in fields})
    view["digest"] = _column(frame, f"{target}_digest").where(
        ordered, _column(frame, f"{target}_digest_unordered")
    )
    view["duration"] = pd.to_numeric(view["duration"], errors="coerce").fillna(0.0)
    view["columns"] = view["columns"].map(comparable_columns, na_action="ignore")
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
