"""Learning curves on a common frame grid and the transfer metrics of Taylor & Stone (2009).

Definitions (every one per study first, then averaged over the seeds of a group):
- Running average: at each episode, the mean return of the last `window` episodes (of all
  episodes so far while fewer have ended), the score run.py prints; default 100 episodes.
  A window counted in episodes covers more frames when episodes are long, so it lags more for
  a walker that already walks (long episodes) than for one that falls at once.
- Curve on the grid: the running average as it stood at each frame of a grid of `points`
  equally spaced frames `budget/points, 2*budget/points, ..., budget`, i.e. the value after the
  last episode that ended at or before that frame (before the first episode ends: the first
  episode's return). `budget` is the fewest frames any study of the comparison ran.
- Initial performance: mean return of the first `jumpstart_episodes` episodes (default 10).
  Jumpstart is a group's initial performance minus that of the from-scratch group.
- Asymptotic performance: mean return of the episodes that ended in the last
  `asymptote_fraction` (default 10%) of the budget (the last episode, if none did).
- Area under the curve: the mean of the curve over the grid, i.e. the area under the learning
  curve divided by the budget, in reward units ("total reward" per frame of the budget).
- Transfer ratio: area of the transfer group over area of the from-scratch group, both measured
  above a floor, (AUC_transfer - floor) / (AUC_scratch - floor), because returns can be
  negative and a plain ratio of negative areas means nothing. The floor is the lowest point of
  any curve of either group (or `--ratio_floor`), so the ratio compares areas between that
  floor and the curves; > 1 means transfer gained reward over the budget.
- Time to threshold: the frame of the first episode at which the running average over a full
  window (`window` episodes) reaches the threshold (default 200), within the budget. A partial
  first window does not count: one lucky early episode is not a learnt walker. A seed that
  never reaches it (fewer than `window` episodes within the budget included) counts as the
  budget, and the group's value is then a lower bound (shown as ">=" with "k/n reached").
- Interquartile mean (IQM) of the asymptotic performance: rliable's robust aggregate over
  seeds, the mean of the middle half of the seeds' values (`analysis.stats`).
- Probability of improvement: the chance that a seed of one group has a larger area under the
  curve than a seed of another, ties counting half (rliable's P(X > Y)); in the table against
  the from-scratch group, and between every two groups of a panel below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.data import Group, StudyResult
from analysis.stats import MISSING, Bootstrap, Estimate, as_bound


@dataclass(frozen=True)
class Settings:
    window: int = 100
    jumpstart_episodes: int = 10
    asymptote_fraction: float = 0.1
    threshold: float = 200.0
    points: int = 200
    ratio_floor: float | None = None
    """None: the lowest point of the compared curves."""


def running_average(rewards: np.ndarray, window: int) -> np.ndarray:
    """(episodes,) trailing mean over the last `window` episodes (all of them while fewer)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(rewards)])
    end = np.arange(1, len(rewards) + 1)
    start = np.maximum(0, end - window)
    return (sums[end] - sums[start]) / (end - start)


def frame_grid(budget: int, points: int) -> np.ndarray:
    """(points,) frames budget/points, ..., budget."""
    return budget * np.arange(1, points + 1) / points


def on_grid(frames: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Step resampling: at each grid frame, the value of the last episode ended by then."""
    last = np.searchsorted(frames, grid, side="right") - 1
    return values[np.maximum(last, 0)]


@dataclass(frozen=True)
class StudyMetrics:
    curve: np.ndarray
    initial: float
    asymptotic: float
    auc: float
    time_to_threshold: float
    """NaN if not reached within the budget."""


def study_metrics(study: StudyResult, budget: int, settings: Settings) -> StudyMetrics:
    if len(study.rewards) == 0:
        raise ValueError(f"{study.name}: no episode finished")
    average = running_average(study.rewards, settings.window)
    curve = on_grid(study.frames, average, frame_grid(budget, settings.points))
    initial = float(study.rewards[:settings.jumpstart_episodes].mean())
    late = (study.frames > (1 - settings.asymptote_fraction) * budget) & (study.frames <= budget)
    if not late.any():  # episodes longer than the last stretch: the last one within the budget
        within = np.flatnonzero(study.frames <= budget)
        late[within[-1] if len(within) else 0] = True
    full_window = np.arange(len(average)) >= settings.window - 1
    reached = np.flatnonzero((average >= settings.threshold) & full_window
                             & (study.frames <= budget))
    return StudyMetrics(
        curve=curve,
        initial=initial,
        asymptotic=float(study.rewards[late].mean()),
        auc=float(curve.mean()),
        time_to_threshold=float(study.frames[reached[0]]) if len(reached) else math.nan,
    )


@dataclass
class GroupMetrics:
    group: Group
    budget: int
    studies: list[StudyMetrics]

    def values(self, metric: str) -> np.ndarray:
        return np.array([getattr(m, metric) for m in self.studies])

    @property
    def curves(self) -> np.ndarray:
        """(seeds, points)."""
        return np.stack([m.curve for m in self.studies])

    def time_to_threshold(self) -> tuple[np.ndarray, int]:
        """Per-seed frames, "not reached" standing in as the budget; and how many stood in."""
        times = self.values("time_to_threshold")
        missing = np.isnan(times)
        return np.where(missing, self.budget, times), int(missing.sum())


@dataclass(frozen=True)
class Row:
    """One line of the transfer table: a group, and its metrics against its scratch group."""

    panel: str
    label: str
    seeds: int
    initial: Estimate
    jumpstart: Estimate
    asymptotic: Estimate
    auc: Estimate
    transfer_ratio: Estimate
    time_to_threshold: Estimate
    threshold_speedup: Estimate
    """time to threshold of scratch / of this group: > 1 is faster than scratch."""
    asymptotic_iqm: Estimate
    improvement: Estimate
    """P(a seed of this group has a larger area under the curve than a seed of scratch)."""
    reached: tuple[int, int]
    has_baseline: bool
    budget: int


def panels(groups: list[Group]) -> list[list[Group]]:
    """Groups that share every non-transfer setting, scratch first, in first-seen order."""
    by_key: dict[tuple, list[Group]] = {}
    for group in groups:
        by_key.setdefault(group.panel_key, []).append(group)
    return [sorted(members, key=lambda g: not g.is_scratch) for members in by_key.values()]


def panel_metrics(members: list[Group], settings: Settings) -> list[GroupMetrics]:
    """Every group of a panel measured on the same grid: the fewest frames any study ran."""
    budget = min(study.frames_run for group in members for study in group.studies)
    return [GroupMetrics(group, budget, [study_metrics(s, budget, settings)
                                         for s in group.studies]) for group in members]


def compare(members: list[GroupMetrics], settings: Settings, bootstrap: Bootstrap) -> list[Row]:
    scratch = next((m for m in members if m.group.is_scratch), None)
    floor = ratio_floor_used(members, settings)
    rows = []
    for metrics in members:
        group = metrics.group
        name = f"{group.panel_label}|{group.label}"
        times, censored = metrics.time_to_threshold()
        time_estimate = bootstrap.mean(times, f"{name}|time")
        if censored:
            time_estimate = as_bound(time_estimate, ">=")
        baseline = scratch is not None and metrics is not scratch
        jumpstart = ratio = speedup = improvement = MISSING
        if baseline:
            jumpstart = bootstrap.difference(metrics.values("initial"),
                                             scratch.values("initial"), f"{name}|jumpstart")
            improvement = improvement_over(metrics, scratch, bootstrap)
            ratio = bootstrap.ratio(metrics.values("auc"), scratch.values("auc"),
                                    f"{name}|ratio", floor)
            scratch_times, scratch_censored = scratch.time_to_threshold()
            speedup = bootstrap.ratio(scratch_times, times, f"{name}|speedup")
            # A seed that did not reach the threshold counts as the budget, which makes its
            # group look faster than it is: scratch's time and so the speedup are lower bounds,
            # this group's time a lower bound and so the speedup an upper bound.
            if censored or scratch_censored:
                speedup = as_bound(speedup, "?" if censored and scratch_censored
                                   else ">=" if scratch_censored else "<=")
        rows.append(Row(
            panel=group.panel_label,
            label=group.label,
            seeds=len(group.studies),
            initial=bootstrap.mean(metrics.values("initial"), f"{name}|initial"),
            jumpstart=jumpstart,
            asymptotic=bootstrap.mean(metrics.values("asymptotic"), f"{name}|asymptotic"),
            auc=bootstrap.mean(metrics.values("auc"), f"{name}|auc"),
            transfer_ratio=ratio,
            time_to_threshold=time_estimate,
            threshold_speedup=speedup,
            asymptotic_iqm=bootstrap.iqm(metrics.values("asymptotic"), f"{name}|asymptotic_iqm"),
            improvement=improvement,
            reached=(len(times) - censored, len(times)),
            has_baseline=baseline,
            budget=metrics.budget,
        ))
    return rows


def ratio_floor_used(members: list[GroupMetrics], settings: Settings) -> float | None:
    if settings.ratio_floor is not None:
        return settings.ratio_floor
    if not any(m.group.is_scratch for m in members):
        return None
    return float(min(m.curves.min() for m in members))


@dataclass(frozen=True)
class Improvement:
    """P(a seed of `better` has a larger area under the curve than a seed of `than`)."""

    panel: str
    better: str
    than: str
    probability: Estimate


def pairwise_improvements(members: list[GroupMetrics], bootstrap: Bootstrap
                          ) -> list[Improvement]:
    """Every ordered pair of different groups of a panel, in the panel's order."""
    return [Improvement(a.group.panel_label, a.group.label, b.group.label,
                        improvement_over(a, b, bootstrap))
            for a in members for b in members if a is not b]


def improvement_over(better: GroupMetrics, than: GroupMetrics, bootstrap: Bootstrap) -> Estimate:
    """P(better's AUC > than's), resampled from one named stream, so that the metrics table and
    the pairwise table print the same interval for the same pair."""
    return bootstrap.improvement(better.values("auc"), than.values("auc"),
                                 f"{better.group.panel_label}|{better.group.label}|beats|"
                                 f"{than.group.label}")
