"""Bounded estimators: quantiles and distinct counts in memory that does not grow with a run.

Classification folds a run's outcomes chunk by chunk (see
:mod:`replay.compare.accumulate`), so what it keeps per query class must stay bounded
however many statements the class has. Both estimators here are *exact* while what they
have seen fits their bound, and estimate beyond it:

- :class:`QuantileSketch` keeps up to ``exact_limit`` values and answers quantiles with
  linear interpolation (numpy's ``percentile``, as pandas' ``Series.quantile``). Past the
  limit it turns into a log-scale histogram (the DDSketch mapping): a value ``x > 0``
  falls in bucket ``ceil(log_gamma(x))`` and is read back as the bucket's midpoint, so
  any quantile it answers is within ``RELATIVE_ERROR`` (0.5 %) of a value seen at that
  rank (nearest rank instead of interpolation between two neighbours). Values at or
  below ``MIN_VALUE`` (1 ns: a duration of 0, two equal timings) count as 0. The
  histogram holds one bucket per 1 % step of the values' range: about 1,400 buckets over
  six decades.
- :class:`DistinctCounter` counts distinct strings (session ids) by 64-bit hashes
  (BLAKE2b, the same in every process, so workers' counters merge). It keeps every hash
  up to ``limit`` (exact but for a 64-bit collision), then only the ``limit`` smallest
  ones, a K-minimum-values sketch: the count is then estimated as
  ``(limit - 1) / (largest kept hash / 2**64)``, with a relative standard error of about
  ``1 / sqrt(limit - 2)`` (1.6 % for the default 4,096).

numpy is imported only where it is used (answering an exact quantile, bucketing a
class past its bound): importing it costs a third of a second, which a command that
classifies nothing should not pay.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from hashlib import blake2b

RELATIVE_ERROR = 0.005
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-9
ZERO_BUCKET = -(2**63)
EXACT_VALUES = 2048
DISTINCT_LIMIT = 4096


class QuantileSketch:
    """Quantiles of a stream of non-negative floats: exact up to a bound, then within 0.5 %."""

    __slots__ = ("_buckets", "_exact", "count", "exact_limit")

    def __init__(self, exact_limit: int = EXACT_VALUES) -> None:
        self.exact_limit = exact_limit
        self.count = 0
        self._exact: list[float] | None = []
        self._buckets: dict[int, int] = {}

    @property
    def exact(self) -> bool:
        """Whether every value seen is still kept (answers are then exact)."""
        return self._exact is not None

    def add(self, values: Iterable[float]) -> None:
        """Fold more values in; NaN values are ignored, as pandas' quantiles skip them."""
        kept = list(values)
        total = sum(kept)
        if total != total:  # a NaN among them (the sum is a C loop, a filter is not)
            kept = [v for v in kept if v == v]
        if not kept:
            return
        self.count += len(kept)
        if self._exact is not None:
            self._exact.extend(kept)
            if self.count <= self.exact_limit:
                return
            kept, self._exact = self._exact, None
        self._bucket(kept)

    def merge(self, other: QuantileSketch) -> None:
        """Fold in everything ``other`` saw (a sketch of another part of the same run)."""
        if other._exact is not None:
            self.add(other._exact)
            return
        if self._exact is not None:
            kept, self._exact = self._exact, None
            self._bucket(kept)
        for key, n in other._buckets.items():
            self._buckets[key] = self._buckets.get(key, 0) + n
        self.count += other.count

    def _bucket(self, values: list[float]) -> None:
        import numpy as np  # a class past its bound: vectorised, a chunk at a time

        array = np.asarray(values, dtype=np.float64)
        positive = array[array > MIN_VALUE]
        keys, counts = np.unique(np.ceil(np.log(positive) / _LOG_GAMMA), return_counts=True)
        buckets = self._buckets
        zeros = int(array.size - positive.size)
        if zeros:
            buckets[ZERO_BUCKET] = buckets.get(ZERO_BUCKET, 0) + zeros
        for key, n in zip(keys.astype(np.int64).tolist(), counts.tolist(), strict=True):
            buckets[key] = buckets.get(key, 0) + n

    def median(self) -> float:
        """The median (NaN when empty), as ``Series.median()`` where exact."""
        if self._exact is not None:
            if not self._exact:
                return math.nan
            import numpy as np

            return float(np.median(np.asarray(self._exact, dtype=np.float64)))
        return self._from_buckets(0.5)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (NaN when empty), as ``Series.quantile(q)`` where exact."""
        if self._exact is not None:
            if not self._exact:
                return math.nan
            import numpy as np

            # pandas asks numpy for the percentile q * 100: the same float arithmetic.
            values = np.asarray(self._exact, dtype=np.float64)
            return float(np.percentile(values, q * 100.0, method="linear"))
        return self._from_buckets(q)

    def _from_buckets(self, q: float) -> float:
        if not self.count:
            return math.nan
        rank = round(q * (self.count - 1))
        keys = sorted(self._buckets)
        seen = 0
        key = keys[-1]
        for candidate in keys:
            seen += self._buckets[candidate]
            if seen > rank:
                key = candidate
                break
        if key == ZERO_BUCKET:
            return 0.0
        return 2.0 * GAMMA**key / (GAMMA + 1.0)


def _hash(value: str) -> int:
    return int.from_bytes(blake2b(value.encode(), digest_size=8).digest(), "little")


class DistinctCounter:
    """How many distinct strings were seen: exact up to ``limit``, then a KMV estimate."""

    __slots__ = ("_hashes", "limit", "saturated")

    def __init__(self, limit: int = DISTINCT_LIMIT) -> None:
        self.limit = limit
        self.saturated = False
        self._hashes: set[int] = set()

    def add(self, values: Iterable[str]) -> None:
        """Fold in some strings (repeats count once)."""
        self._hashes.update(map(_hash, values))
        self._trim()

    def merge(self, other: DistinctCounter) -> None:
        """Fold in the values ``other`` saw."""
        self._hashes |= other._hashes
        self.saturated = self.saturated or other.saturated
        self._trim()

    def _trim(self) -> None:
        if len(self._hashes) > self.limit:
            self._hashes = set(heapq.nsmallest(self.limit, self._hashes))
            self.saturated = True

    def count(self) -> int:
        """The number of distinct values seen (estimated once saturated)."""
        if not self.saturated:
            return len(self._hashes)
        largest = max(self._hashes) / 2.0**64
        return max(round((self.limit - 1) / largest), self.limit) if largest > 0 else 0
