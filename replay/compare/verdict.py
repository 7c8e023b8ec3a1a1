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

:func:`judge` is the rule, written once, in plain Python over one flat outcome row (the
dict :meth:`replay.model.outcomes.OutcomeRow.to_flat` gives and ``outcomes.jsonl``
holds): classification calls it on every row it folds, blame through
:func:`statement_verdict`. :func:`is_slower` is the one "slower" comparison, used by the
statement rule and by the class rule (:mod:`replay.compare.classes`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from operator import itemgetter
from typing import Any

from replay.model.outcomes import OutcomeRow


class Verdict(StrEnum):
    """A statement's or a query class's verdict, declared worst first.

    Hashes as its value (an Enum member hashes by its name, in Python): a verdict and its
    name are the same key in a dict, such as a class's counts of statement verdicts.
    """

    FAILS = "fails"
    SHAPE = "shape"
    CHANGED = "changed"
    SLOWER = "slower"
    NOISY = "noisy"
    BOTH_FAIL = "both_fail"
    FIXED = "fixed"
    OK = "ok"

    __hash__ = str.__hash__

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


def is_slower(candidate: float, reference: float, limits: Thresholds) -> bool:
    """Whether ``candidate`` seconds are slower than ``reference`` seconds: more than
    ``slower_factor`` times as long and more than ``slower_min_seconds`` longer."""
    return (
        candidate > limits.slower_factor * reference
        and candidate - reference > limits.slower_min_seconds
    )


_DEFAULT = Thresholds()
# Per ``ordered``: for the baseline, the candidate and the second baseline, the flat-row
# keys of the parts of an answer that must agree: tag, rows, the digest that applies
# (see judge) and columns; and itemgetters of them (one C call on the hot path).
_TARGETS = ("baseline", "candidate", "baseline2")
_ANSWERS = {
    ordered: tuple(
        (
            f"{target}_tag",
            f"{target}_rows",
            f"{target}_digest" if ordered else f"{target}_digest_unordered",
            f"{target}_columns",
        )
        for target in _TARGETS
    )
    for ordered in (False, True)
}
_GETTERS = {ordered: tuple(itemgetter(*keys) for keys in _ANSWERS[ordered]) for ordered in _ANSWERS}
_NO_NOISE = (False, False, False, False)
_OK_OR_NONE = ("ok", None)
# The members as module constants: Verdict.OK is a slow attribute lookup (Python 3.11).
_FAILS, _SHAPE, _CHANGED, _SLOWER = Verdict.FAILS, Verdict.SHAPE, Verdict.CHANGED, Verdict.SLOWER
_NOISY, _BOTH_FAIL, _FIXED, _OK = Verdict.NOISY, Verdict.BOTH_FAIL, Verdict.FIXED, Verdict.OK


def judge(row: Mapping[str, Any], limits: Thresholds = _DEFAULT) -> Verdict | None:
    """The verdict of one flat outcome row, ``None`` where nothing was compared.

    Rows where the baseline or the candidate was ``skipped`` or ``lost`` (a broken
    connection, not an answer), or has no outcome, get ``None`` and produce no finding.
    A missing field is ``None`` (two missing values are equal); a missing or untimed
    duration counts as 0 seconds. The ordered digest counts only where the statement has
    a top-level ORDER BY (``ordered``); otherwise the same rows in another order are the
    same result, and the unordered digests are compared. Columns are compared as
    :func:`comparable_columns` makes them.
    """
    get = row.get
    base_status, cand_status = get("baseline_status"), get("candidate_status")
    base2_status = get("baseline2_status")
    if base_status == "ok" and cand_status == "ok" and (base2_status in _OK_OR_NONE):
        has_b2 = base2_status is not None  # the common case, tested first
    else:
        if (
            base_status is None
            or cand_status is None
            or base_status in UNSENT_STATUSES
            or cand_status in UNSENT_STATUSES
        ):
            return None
        has_b2 = base2_status is not None and base2_status not in UNSENT_STATUSES
        base_err = base_status in ERROR_STATUSES
        if has_b2 and base_err != (base2_status in ERROR_STATUSES):
            return _NOISY
        if cand_status in ERROR_STATUSES:
            return _BOTH_FAIL if base_err else _FAILS
        if base_err:
            return _FIXED
    # Both answered (and so did the second baseline, where there is one).
    ordered = bool(get("ordered"))
    try:
        of_base, of_cand, of_base2 = _GETTERS[ordered]
        base, cand = of_base(row), of_cand(row)
        base2 = of_base2(row) if has_b2 else base
    except KeyError:  # a row not written by the engine: a missing field is None
        base, cand, base2 = (tuple(map(get, keys)) for keys in _ANSWERS[ordered])
    alike = base == cand == base2 if has_b2 else base == cand
    noise = _NO_NOISE
    if not alike:  # (the common case is alike: every answer the same)
        if has_b2:
            # An aspect changed only if the two baselines agree on it: a row count that
            # moves while now() keeps the digests apart is still the migration's doing.
            noise = (
                base[0] != base2[0],
                base[1] != base2[1],
                base[2] != base2[2],
                _columns_differ(base[3], base2[3]),
            )
        if not noise[3] and _columns_differ(base[3], cand[3]):
            return _SHAPE
        if (
            (base[0] != cand[0] and not noise[0])
            or (base[1] != cand[1] and not noise[1])
            or (base[2] != cand[2] and not noise[2])
        ):
            return _CHANGED
    candidate = get("candidate_duration")
    if candidate:  # 0 seconds (or not timed) is never slower, thresholds being >= 0
        reference = get("baseline_duration") or 0.0
        if has_b2:
            reference = max(reference, get("baseline2_duration") or 0.0)
        if is_slower(candidate, reference, limits):
            return _SLOWER
    return _NOISY if noise is not _NO_NOISE and any(noise) else _OK


def _columns_differ(a: str | None, b: str | None) -> bool:
    return a != b and comparable_columns(a) != comparable_columns(b)


def statement_verdict(
    row: OutcomeRow | Mapping[str, Any], thresholds: Thresholds | None = None
) -> Verdict | None:
    """The verdict of one outcome row (an :class:`OutcomeRow` or its flat form), by
    :func:`judge`."""
    flat = row.to_flat() if isinstance(row, OutcomeRow) else row
    return judge(flat, thresholds or _DEFAULT)
