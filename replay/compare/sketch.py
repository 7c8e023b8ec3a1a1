"""Bounded estimators: quantiles and distinct counts in memory that does not grow with a run.

Classification folds a run's outcomes chunk by chunk (see
:mod:`replay.compare.accumulate`), so what it keeps per query class must stay bounded
however many statements the class has. Both estimators here are *exact* while what they
have seen fits their bound, so a small run is judged exactly as a whole-frame pandas
computation judges it, and estimate beyond it:

- :class:`QuantileSketch` keeps up to ``exact_limit`` values and answers quantiles as
  pandas does (linear interpolation). Past the limit it turns into a log-scale histogram
  (the DDSketch mapping): a value ``x > 0`` falls in bucket ``ceil(log_gamma(x))`` and is
  read back as the bucket's midpoint, so any quantile it answers is within
  ``RELATIVE_ERROR`` (0.5 %) of a value seen at that rank (nearest rank instead of
  pandas' interpolation between two neighbours). Values at or below ``MIN_VALUE``
  (1 ns: a duration of 0, two equal timings) count as 0. The histogram holds one bucket
  per 1 % step of the values' range: about 1,400 buckets over six decades, 16 bytes each.
- :class:`DistinctCounter` counts distinct strings (session ids) by their 64-bit hashes.
  It keeps every hash up to ``limit`` (exact but for a 64-bit collision), then only the
  ``limit`` smallest ones, a K-minimum-values sketch: the count is then estimated as
  ``(limit - 1) / (largest kept hash / 2**64)``, with a relative standard error of about
  ``1 / sqrt(limit - 2)`` (1.6 % for the default 4,096).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

RELATIVE_ERROR = 0.005
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-9
ZERO_BUCKET = np.iinfo(np.int64).min
EXACT_VALUES = 2048
DISTINCT_LIMIT = 4096

Floats = npt.NDArray[np.float64]


class QuantileSketch:
    """Quantiles of a stream of non-negative floats: exact up to a bound, then within 0.5 %."""

    __slots__ = ("_counts", "_exact", "_keys", "count", "exact_limit")

    def __init__(self, exact_limit: int = EXACT_VALUES) -> None:
        self.exact_limit = exact_limit
        self.count = 0
        self._exact: list[Floats] | None = []
        self._keys = np.empty(0, dtype=np.int64)
        self._counts = np.empty(0, dtype=np.int64)

    @property
    def exact(self) -> bool:
        """Whether every value seen is still kept (answers are then pandas' own)."""
        return self._exact is not None

    def add(self, values: npt.ArrayLike) -> None:
        """Fold more values in; NaN values are ignored, as pandas' quantiles skip them."""
        array = np.asarray(values, dtype=np.float64)
        array = array[~np.isnan(array)]
        if not array.size:
            return
        self.count += int(array.size)
        if self._exact is not None:
            self._exact.append(array)
            if self.count <= self.exact_limit:
                return
            array = np.concatenate(self._exact)
            self._exact = None
        self._bucket(array)

    def merge(self, other: QuantileSketch) -> None:
        """Fold in everything ``other`` saw (a sketch of another part of the same run)."""
        if other._exact is not None:
            if other._exact:
                self.add(np.concatenate(other._exact))
            return
        if self._exact is not None:
            kept = np.concatenate(self._exact) if self._exact else np.empty(0)
            self._exact = None
            self._bucket(kept)
        keys = np.concatenate([self._keys, other._keys])
        weights = np.concatenate([self._counts, other._counts])
        merged, inverse = np.unique(keys, return_inverse=True)
        self._keys = merged
        self._counts = np.bincount(inverse, weights=weights, minlength=merged.size).astype(np.int64)
        self.count += other.count

    def _bucket(self, values: Floats) -> None:
        keys = np.full(values.shape, ZERO_BUCKET, dtype=np.int64)
        positive = values > MIN_VALUE
        keys[positive] = np.ceil(np.log(values[positive]) / _LOG_GAMMA).astype(np.int64)
        merged, inverse = np.unique(np.concatenate([self._keys, keys]), return_inverse=True)
        weights = np.concatenate([self._counts, np.ones(keys.size, dtype=np.int64)])
        self._keys = merged
        self._counts = np.bincount(inverse, weights=weights, minlength=merged.size).astype(np.int64)

    def _values(self) -> pd.Series:
        assert self._exact is not None
        return pd.Series(np.concatenate(self._exact) if self._exact else [], dtype=float)

    def median(self) -> float:
        """The median (NaN when empty), as ``Series.median()`` where exact."""
        if self._exact is not None:
            return float(self._values().median())
        return self._from_buckets(0.5)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (NaN when empty), as ``Series.quantile(q)`` where exact."""
        if self._exact is not None:
            return float(self._values().quantile(q))
        return self._from_buckets(q)

    def _from_buckets(self, q: float) -> float:
        if not self.count:
            return math.nan
        rank = round(q * (self.count - 1))
        index = int(np.searchsorted(np.cumsum(self._counts), rank, side="right"))
        key = int(self._keys[min(index, self._keys.size - 1)])
        if key == ZERO_BUCKET:
            return 0.0
        return 2.0 * GAMMA**key / (GAMMA + 1.0)


class DistinctCounter:
    """How many distinct strings were seen: exact up to ``limit``, then a KMV estimate."""

    __slots__ = ("_hashes", "limit", "saturated")

    def __init__(self, limit: int = DISTINCT_LIMIT) -> None:
        self.limit = limit
        self.saturated = False
        self._hashes = np.empty(0, dtype=np.uint64)

    def add(self, values: pd.Series) -> None:
        """Fold in a column of strings (missing values count as one value)."""
        if values.empty:
            return
        hashes = pd.util.hash_pandas_object(values.astype(str), index=False).to_numpy(np.uint64)
        merged = np.union1d(self._hashes, hashes)
        if merged.size > self.limit:
            merged = merged[: self.limit]
            self.saturated = True
        self._hashes = merged

    def merge(self, other: DistinctCounter) -> None:
        """Fold in the values ``other`` saw."""
        merged = np.union1d(self._hashes, other._hashes)
        if merged.size > self.limit:
            merged = merged[: self.limit]
            self.saturated = True
        self._hashes = merged
        self.saturated = self.saturated or other.saturated

    def count(self) -> int:
        """The number of distinct values seen (estimated once saturated)."""
        if not self.saturated:
            return int(self._hashes.size)
        largest = float(self._hashes[-1]) / 2.0**64
        return max(round((self.limit - 1) / largest), self.limit) if largest > 0 else 0
