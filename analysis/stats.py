"""Percentile bootstrap confidence intervals over seeds, seeded so reports are reproducible.

Each estimate resamples the per-seed values of a group with replacement (`resamples` times) and
takes the `(1 - confidence) / 2` and `(1 + confidence) / 2` percentiles of the statistic. Two
groups (a difference, a ratio) are resampled independently: seeds are not paired across groups.
With very few seeds the interval is coarse (3 seeds give only 10 distinct resampled means), and
with one seed there is no interval at all. Each estimate draws from its own generator, seeded
from `seed` and a text naming the estimate, so adding a group does not change other intervals.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (`low`, `high` are NaN without one)."""

    value: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    bound: str = ""
    """">=" or "<=" when "not reached" stood in for some values (time to threshold): the true
    value is at least / at most this; "?" when it could lie either way."""

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)


MISSING = Estimate(math.nan)


def as_bound(estimate: Estimate, bound: str) -> Estimate:
    return replace(estimate, bound=bound)


@dataclass(frozen=True)
class Bootstrap:
    resamples: int = 10_000
    confidence: float = 0.95
    seed: int = 0

    def generator(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def percentiles(self, statistics: np.ndarray) -> tuple[float, float]:
        tail = 100 * (1 - self.confidence) / 2
        low, high = np.percentile(statistics, [tail, 100 - tail], axis=0)
        return float(low), float(high)

    def resampled_means(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(resamples,) means of `values` resampled with replacement; values (n,) or (n, k)."""
        indices = rng.integers(0, len(values), size=(self.resamples, len(values)))
        return values[indices].mean(axis=1)

    def mean(self, values: np.ndarray, name: str) -> Estimate:
        values = np.asarray(values, dtype=np.float64)
        if len(values) == 0:
            return MISSING
        value = float(values.mean())
        if len(values) < 2:
            return Estimate(value, n=len(values))
        low, high = self.percentiles(self.resampled_means(values, self.generator(name)))
        return Estimate(value, low, high, len(values))

    def difference(self, a: np.ndarray, b: np.ndarray, name: str) -> Estimate:
        """mean(a) - mean(b)."""
        return self._two_groups(a, b, name, lambda mean_a, mean_b: mean_a - mean_b)

    def ratio(self, a: np.ndarray, b: np.ndarray, name: str, floor: float = 0.0) -> Estimate:
        """(mean(a) - floor) / (mean(b) - floor); NaN where the denominator is not positive."""
        def ratio_of(mean_a, mean_b):
            denominator = np.asarray(mean_b - floor, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(denominator > 0, (mean_a - floor) / denominator, np.nan)
        return self._two_groups(a, b, name, ratio_of)

    def _two_groups(self, a: np.ndarray, b: np.ndarray, name: str, statistic) -> Estimate:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if len(a) == 0 or len(b) == 0:
            return MISSING
        value = float(statistic(a.mean(), b.mean()))
        n = min(len(a), len(b))
        if max(len(a), len(b)) < 2 or math.isnan(value):
            return Estimate(value, n=n)
        rng = self.generator(name)
        statistics = statistic(self.resampled_means(a, rng), self.resampled_means(b, rng))
        statistics = statistics[~np.isnan(statistics)]
        if len(statistics) < self.resamples / 2:  # the denominator is too often not positive
            return Estimate(value, n=n)
        low, high = self.percentiles(statistics)
        return Estimate(value, low, high, n)

    def mean_band(self, curves: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise interval of the mean curve: curves (seeds, points) -> low, high (points,)."""
        if len(curves) < 2:
            return curves.mean(axis=0), curves.mean(axis=0)
        means = self.resampled_means(curves, self.generator(name))  # (resamples, points)
        tail = 100 * (1 - self.confidence) / 2
        low, high = np.percentile(means, [tail, 100 - tail], axis=0)
        return low, high
