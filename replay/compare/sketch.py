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
  six decades (numpy arrays of keys and counts).
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

import bisect
import math
from array import array
from collections.abc import Iterable
from functools import lru_cache
from hashlib import blake2b
from typing import Any

RELATIVE_ERROR = 0.005
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-9
ZERO_BUCKET = -(2**63)
EXACT_VALUES = 2048
DISTINCT_LIMIT = 4096


class QuantileSketch:
    """Quantiles of a stream of non-negative floats: exact up to a bound, then within 0.5 %."""

    __slots__ = ("_counts", "_exact", "_keys", "count", "exact_limit")

    def __init__(self, exact_limit: int = EXACT_VALUES) -> None:
        self.exact_limit = exact_limit
        self.count = 0
        # 8 bytes a value, as a numpy array would hold them, without importing numpy.
        self._exact: array[float] | None = array("d")
        self._keys: Any = None  # once past the bound: bucket keys and their counts
        self._counts: Any = None

    @property
    def exact(self) -> bool:
        """Whether every value seen is still kept (answers are then exact)."""
        return self._exact is not None

    def add(self, values: Iterable[float]) -> None:
        """Fold more values in; NaN values are ignored, as pandas' quantiles skip them."""
        kept = array("d", values)
        total = sum(kept)
        if total != total:  # a NaN among them (the sum is a C loop, a filter is not)
            kept = array("d", [v for v in kept if v == v])
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
        self._add_buckets(other._keys, other._counts)
        self.count += other.count

    def _bucket(self, values: array[float]) -> None:
        import numpy as np  # a class past its bound: vectorised, a chunk at a time

        array_ = np.frombuffer(values, dtype=np.float64) if values else np.empty(0)
        keys = np.full(array_.shape, ZERO_BUCKET, dtype=np.int64)
        positive = array_ > MIN_VALUE
        keys[positive] = np.ceil(np.log(array_[positive]) / _LOG_GAMMA).astype(np.int64)
        self._add_buckets(keys, np.ones(keys.size, dtype=np.int64))

    def _add_buckets(self, keys: Any, counts: Any) -> None:
        import numpy as np

        if self._keys is not None:
            keys = np.concatenate([self._keys, keys])
            counts = np.concatenate([self._counts, counts])
        merged, inverse = np.unique(keys, return_inverse=True)
        self._keys = merged
        self._counts = np.bincount(inverse, weights=counts, minlength=merged.size).astype(np.int64)

    def median(self) -> float:
        """The median (NaN when empty), as ``Series.median()`` where exact."""
        if self._exact is not None:
            if not self._exact:
                return math.nan
            import numpy as np

            return float(np.median(np.frombuffer(self._exact, dtype=np.float64)))
        return self._from_buckets(0.5)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (NaN when empty), as ``Series.quantile(q)`` where exact."""
        if self._exact is not None:
            if not self._exact:
                return math.nan
            import numpy as np

            # pandas asks numpy for the percentile q * 100: the same float arithmetic.
            values = np.frombuffer(self._exact, dtype=np.float64)
            return float(np.percentile(values, q * 100.0, method="linear"))
        return self._from_buckets(q)

    def _from_buckets(self, q: float) -> float:
        import numpy as np

        if not self.count:
            return math.nan
        rank = round(q * (self.count - 1))
        index = int(np.searchsorted(np.cumsum(self._counts), rank, side="right"))
        key = int(self._keys[min(index, self._keys.size - 1)])
        if key == ZERO_BUCKET:
            return 0.0
        return 2.0 * GAMMA**key / (GAMMA + 1.0)


@lru_cache(maxsize=1 << 16)
def _hash(value: str) -> int:
    # Cached: a session is counted in every chunk and class it shows up in.
    data = value.encode("utf-8", "surrogatepass")  # a captured name may not be UTF-8
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


class DistinctCounter:
    """How many distinct strings were seen: exact up to ``limit``, then a KMV estimate."""

    __slots__ = ("_hashes", "limit", "saturated")

    def __init__(self, limit: int = DISTINCT_LIMIT) -> None:
        self.limit = limit
        self.saturated = False
        # The hashes kept, in order: 8 bytes each (a class may keep 4,096 per verdict).
        self._hashes = array("Q")

    def add(self, values: Iterable[str]) -> None:
        """Fold in some strings (repeats count once)."""
        kept = self._hashes
        # Most of a chunk's sessions were seen in earlier chunks: look them up first.
        new = {h for h in map(_hash, values) if not _holds(kept, h)}
        if self.saturated and new:
            new = {h for h in new if h < kept[-1]}
        if new:
            self._keep(kept, new)

    def merge(self, other: DistinctCounter) -> None:
        """Fold in the values ``other`` saw."""
        self.saturated = self.saturated or other.saturated
        self._keep(self._hashes, set(other._hashes))

    def _keep(self, kept: array[int], new: set[int]) -> None:
        merged = sorted(new.union(kept))
        if len(merged) > self.limit:
            del merged[self.limit :]
            self.saturated = True
        self._hashes = array("Q", merged)

    def count(self) -> int:
        """The number of distinct values seen (estimated once saturated)."""
        if not self.saturated:
            return len(self._hashes)
        largest = self._hashes[-1] / 2.0**64
        return max(round((self.limit - 1) / largest), self.limit) if largest > 0 else 0


def _holds(ordered: array[int], value: int) -> bool:
    at = bisect.bisect_left(ordered, value)
    return at < len(ordered) and ordered[at] == value
