"""Zero-shot transfer: a policy trained at one leg length, evaluated (no training) at others.

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

    policy: str
    trained_leg: float
    leg: float
    mean_return: Estimate
    episodes: int
    falls: int

    @property
    def fall_rate(self) -> float:
        return self.falls / self.episodes if self.episodes else math.nan


@dataclass
class Line:
    """One policy across walkers, by leg length."""

    policy: str
    trained_leg: float
    cells: list[Cell]

    @property
    def label(self) -> str:
        trained = "" if math.isnan(self.trained_leg) else f" (trained at leg {self.trained_leg:g})"
        return f"{self.policy}{trained}"


def zero_shot_lines(evaluations: list[Evaluation], bootstrap: Bootstrap) -> list[Line]:
    """Policies in first-seen order, each with its walkers sorted by leg length."""
    pooled: dict[tuple[str, float], dict[float, list[Evaluation]]] = {}
    for evaluation in evaluations:
        key = (evaluation.policy_name, evaluation.trained_leg)
        pooled.setdefault(key, {}).setdefault(evaluation.leg, []).append(evaluation)
    lines = []
    for (policy, trained_leg), by_leg in pooled.items():
        cells = []
        for leg in sorted(by_leg):
            returns = np.concatenate([e.returns for e in by_leg[leg]])
            falls = sum(e.falls for e in by_leg[leg])
            estimate = bootstrap.mean(returns, f"zero-shot|{policy}|{leg}")
            cells.append(Cell(policy, trained_leg, leg, estimate, len(returns), falls))
        lines.append(Line(policy, trained_leg, cells))
    return sorted(lines, key=lambda line: (math.isnan(line.trained_leg), line.trained_leg))


def matrix(lines: list[Line]) -> tuple[list[str], list[float], np.ndarray]:
    """(row labels, walker leg lengths, (policies, legs) mean returns with NaN where not run)."""
    legs = sorted({cell.leg for line in lines for cell in line.cells})
    values = np.full((len(lines), len(legs)), np.nan)
    for row, line in enumerate(lines):
        for cell in line.cells:
            values[row, legs.index(cell.leg)] = cell.mean_return.value
    return [line.label for line in lines], legs, values
