"""Confidence intervals over seeds from SciPy's bootstrap, and rliable's aggregate statistics.

Every interval is `scipy.stats.bootstrap`'s percentile interval: the per-seed values of a group
are resampled with replacement (`resamples` times) and the interval is the `(1 - confidence) / 2`
and `(1 + confidence) / 2` percentiles of the statistic. The percentile method rather than
SciPy's default BCa, because BCa's jackknife acceleration is meaningless with the 3 to 5 seeds a
study has (and undefined when all seeds agree). Two groups (a difference, a ratio, a probability
of improvement) are resampled independently (`paired=False`): seeds are not paired across
groups. With very few seeds the interval is coarse (3 seeds give only 10 distinct resampled
means), and a group of one seed has no interval at all. Each estimate draws from its own
generator, seeded from `seed` and a text naming the estimate, so adding a group does not change
other intervals.

The aggregates follow rliable (Agarwal et al., "Deep RL at the edge of the statistical
precipice", NeurIPS 2021):
- interquartile mean (IQM): the mean of the middle 50% of the per-seed values, i.e.
  `scipy.stats.trim_mean(values, 0.25)` (as rliable computes it); it discards
  `floor(n / 4)` values at each end, so with fewer than 4 seeds it is the plain mean;
- probability of improvement P(X > Y): the chance that a random seed of X scores more than a
  random seed of Y, ties counting half (the Mann-Whitney U statistic over n_X * n_Y).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

IQM_TRIM = 0.25
"""Share of the values cut at each end for the interquartile mean."""


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


def mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(values, axis=axis)


def interquartile_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.trim_mean(values, IQM_TRIM, axis=axis)


def probability_of_improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 over all pairs of values of x and y (both along `axis`)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    difference = x[..., :, None] - y[..., None, :]
    return ((difference > 0) + 0.5 * (difference == 0)).mean(axis=(-2, -1))


Statistic = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Bootstrap:
    resamples: int = 10_000
    confidence: float = 0.95
    seed: int = 0

    def generator(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def resample(self, samples: tuple[np.ndarray, ...], statistic: Statistic, name: str,
                 axis: int = 0) -> Any:
        """SciPy's `BootstrapResult` for `statistic` over `samples` (each resampled on its own)."""
        return stats.bootstrap(samples, statistic, n_resamples=self.resamples,
                               confidence_level=self.confidence, method="percentile",
                               vectorized=True, paired=False, axis=axis,
                               rng=self.generator(name))

    def one_group(self, values: np.ndarray, name: str, statistic: Statistic = mean
                  ) -> Estimate:
        """`statistic` (default: the mean) of one group's per-seed values, with its interval."""
        values = np.asarray(values, dtype=np.float64)
        if len(values) == 0:
            return MISSING
        value = float(statistic(values))
        if len(values) < 2:
            return Estimate(value, n=len(values))
        interval = self.resample((values,), statistic, name).confidence_interval
        return Estimate(value, float(interval.low), float(interval.high), len(values))

    def mean(self, values: np.ndarray, name: str) -> Estimate:
        return self.one_group(values, name)

    def iqm(self, values: np.ndarray, name: str) -> Estimate:
        return self.one_group(values, name, interquartile_mean)

    def difference(self, a: np.ndarray, b: np.ndarray, name: str) -> Estimate:
        """mean(a) - mean(b)."""
        return self.two_groups(a, b, name, lambda x, y, axis=-1: mean(x, axis) - mean(y, axis))

    def improvement(self, a: np.ndarray, b: np.ndarray, name: str) -> Estimate:
        """P(a seed of `a` beats a seed of `b`)."""
        return self.two_groups(a, b, name, probability_of_improvement)

    def ratio(self, a: np.ndarray, b: np.ndarray, name: str, floor: float = 0.0) -> Estimate:
        """(mean(a) - floor) / (mean(b) - floor); NaN where the denominator is not positive."""
        def ratio_of(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
            denominator = np.asarray(mean(y, axis) - floor, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(denominator > 0, (mean(x, axis) - floor) / denominator, np.nan)
        return self.two_groups(a, b, name, ratio_of)

    def two_groups(self, a: np.ndarray, b: np.ndarray, name: str, statistic: Statistic
                   ) -> Estimate:
        """`statistic(a, b)` with an interval when both groups have two seeds or more.

        Resamples whose statistic is NaN (a ratio whose denominator was not positive) are left
        out of the percentiles; if that is most of them there is no interval.
        """
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if len(a) == 0 or len(b) == 0:
            return MISSING
        value = float(statistic(a, b))
        n = min(len(a), len(b))
        if n < 2 or math.isnan(value):
            return Estimate(value, n=n)
        distribution = self.resample((a, b), statistic, name).bootstrap_distribution
        distribution = distribution[~np.isnan(distribution)]
        if len(distribution) < self.resamples / 2:  # the denominator is too often not positive
            return Estimate(value, n=n)
        low, high = self.percentiles(distribution)
        return Estimate(value, low, high, n)

    def percentiles(self, statistics: np.ndarray) -> tuple[float, float]:
        tail = 100 * (1 - self.confidence) / 2
        low, high = np.percentile(statistics, [tail, 100 - tail])
        return float(low), float(high)

    def mean_band(self, curves: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise interval of the mean curve: curves (seeds, points) -> low, high (points,)."""
        if len(curves) < 2:
            return curves.mean(axis=0), curves.mean(axis=0)
        interval = self.resample((curves,), mean, name, axis=0).confidence_interval
        return interval.low, interval.high


def clustered_means(values: np.ndarray, seeds: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """Means of `values` (seeds, episodes) over resampled seeds and, inside each, resampled
    episodes: `seeds` (resamples, n_seeds) and `episodes` (resamples, n_seeds, n_episodes) are
    indices drawn with replacement."""
    return values[seeds[..., None], episodes].mean(axis=(-2, -1))


def paired_clustered_difference(a: np.ndarray, b: np.ndarray, name: str,
                                bootstrap: Bootstrap = Bootstrap()) -> Estimate:
    """mean(a) - mean(b) for two designs trained with the same seeds and scored on the same
    terrains (`a`, `b`: seeds x episodes, row i of each trained with seed i, column j played
    on terrain j), with a percentile interval from a two-level bootstrap: the training seeds
    are resampled (the unit of replication), then the episodes inside each resampled seed;
    both designs take the same draws, so the pairing by seed and by terrain is kept. One seed
    gives no interval (the seed-to-seed spread is unknown)."""
    difference = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if difference.ndim != 2 or difference.size == 0:
        return MISSING
    value = float(difference.mean())
    n_seeds, n_episodes = difference.shape
    if n_seeds < 2:
        return Estimate(value, n=n_seeds)
    rng = bootstrap.generator(name)
    seeds = rng.integers(0, n_seeds, (bootstrap.resamples, n_seeds))
    episodes = rng.integers(0, n_episodes, (bootstrap.resamples, n_seeds, n_episodes))
    low, high = bootstrap.percentiles(clustered_means(difference, seeds, episodes))
    return Estimate(value, low, high, n_seeds)


def clustered_mean(values: np.ndarray, name: str, bootstrap: Bootstrap = Bootstrap()
                   ) -> Estimate:
    """The mean of one design's scores (seeds x episodes), its interval clustered by seed as
    `paired_clustered_difference`'s."""
    values = np.asarray(values, dtype=np.float64)
    return paired_clustered_difference(values, np.zeros_like(values), name, bootstrap)
