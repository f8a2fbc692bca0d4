"""Zero-shot transfer: a policy trained on one design (or range of designs), evaluated with no
training on walkers of other designs, read along one design parameter (the axis).

Evaluations of the same policy on the same walker are pooled; the interval of a mean return is
the bootstrap over its episodes (each a different seed of the course), not over training seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.data import Evaluation
from analysis.stats import Bootstrap, Estimate


@dataclass(frozen=True)
class Cell:
    """One policy on one walker."""

    x: float
    """The walker's value of the axis parameter."""
    mean_return: Estimate
    episodes: int
    falls: int

    @property
    def fall_rate(self) -> float:
        return self.falls / self.episodes if self.episodes else math.nan


@dataclass
class Line:
    """One policy across walkers, by the axis parameter."""

    policy: str
    axis: str
    trained_on: str
    """The policy's training value of the axis parameter: '34', '24:46' (a range) or ''."""
    cells: list[Cell]

    @property
    def label(self) -> str:
        if not self.trained_on:
            return self.policy
        verb = "over" if ":" in self.trained_on else "at"
        return f"{self.policy} (trained {verb} {self.axis} {self.trained_on})"

    @property
    def trained_span(self) -> tuple[float, float] | None:
        """(low, high) of the axis the policy was trained on; low == high for one design."""
        if not self.trained_on:
            return None
        low, _, high = self.trained_on.partition(":")
        return float(low), float(high or low)


def varying_axis(evaluations: list[Evaluation]) -> str:
    """The design parameter the evaluated walkers differ in most (leg_length on a tie)."""
    names = ["leg_length", *sorted({name for e in evaluations for name in e.walker} - {
        "leg_length"})]
    def spread(name: str) -> int:
        return len({e.walker.get(name) for e in evaluations})
    return max(names, key=spread)


def zero_shot_lines(evaluations: list[Evaluation], bootstrap: Bootstrap,
                    axis: str | None = None) -> list[Line]:
    """Policies ordered by what they were trained on, each with its walkers along `axis`
    (default: the parameter that varies)."""
    axis = axis or varying_axis(evaluations)
    pooled: dict[tuple[str, str], dict[float, list[Evaluation]]] = {}
    for evaluation in evaluations:
        x = evaluation.walker.get(axis, math.nan)
        if math.isnan(x):
            continue  # evaluated over a range of this parameter: no point on the axis
        key = (evaluation.policy_name, evaluation.trained_on.get(axis, ""))
        pooled.setdefault(key, {}).setdefault(x, []).append(evaluation)
    lines = []
    for (policy, trained_on), by_x in pooled.items():
        cells = []
        for x in sorted(by_x):
            returns = np.concatenate([e.returns for e in by_x[x]])
            falls = sum(e.falls for e in by_x[x])
            estimate = bootstrap.mean(returns, f"zero-shot|{policy}|{axis}|{x}")
            cells.append(Cell(x, estimate, len(returns), falls))
        lines.append(Line(policy, axis, trained_on, cells))
    return sorted(lines, key=lambda line: (line.trained_span is None, line.trained_span or (0, 0),
                                           line.policy))


def matrix(lines: list[Line]) -> tuple[list[str], list[float], np.ndarray]:
    """(row labels, walker axis values, (policies, walkers) mean returns, NaN where not run)."""
    xs = sorted({cell.x for line in lines for cell in line.cells})
    values = np.full((len(lines), len(xs)), np.nan)
    for row, line in enumerate(lines):
        for cell in line.cells:
            values[row, xs.index(cell.x)] = cell.mean_return.value
    return [line.label for line in lines], xs, values
