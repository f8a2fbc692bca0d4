"""Zero-shot transfer: a policy trained on one design (or range of designs), evaluated with no
training on walkers of other designs, read along one design parameter (the axis).

Evaluations of the same policy on the same walker (its whole design) are pooled; walkers that
differ off the axis (motor torque 80 and 160 at leg 30) are separate lines, labelled by what
differs. The interval of a mean return is the bootstrap over its episodes (each a different
seed of the course), not over training seeds.
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
    walkers: str = ""
    """The walkers' design off the axis, where lines differ in it ('motor_torque 160'), else ''."""

    @property
    def label(self) -> str:
        on = f" on {self.walkers}" if self.walkers else ""
        if not self.trained_on:
            return self.policy + on
        verb = "over" if ":" in self.trained_on else "at"
        return f"{self.policy} (trained {verb} {self.axis} {self.trained_on}){on}"

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


SEGMENTS = ("thigh_length", "shin_length")


def off_axis_design(walker: dict[str, float], axis: str) -> tuple[tuple[str, float | None], ...]:
    """The walker's design but for `axis`, comparable between walkers (NaN, a range: None).
    What the axis itself moves is left out: along leg_length a segment counts as its difference
    from the leg (0: it follows the leg), along a segment leg_length (their mean) not at all."""
    design = []
    for name, value in sorted(walker.items()):
        if name == axis or (axis in SEGMENTS and name == "leg_length"):
            continue
        if axis == "leg_length" and name in SEGMENTS:
            value = value - walker.get("leg_length", math.nan)
        design.append((name, None if math.isnan(value) else round(value, 9)))
    return tuple(design)


def describe_off_axis(design: tuple[tuple[str, float | None], ...],
                      varying: set[str], axis: str) -> str:
    """The parameters of `design` in `varying`, as text ('motor_torque 160')."""
    def text(name: str, value: float | None) -> str:
        if value is None:
            return f"{name} ranged"
        if axis == "leg_length" and name in SEGMENTS:
            return f"{name} leg{value:+g}"
        return f"{name} {value:g}"
    return ", ".join(text(name, value) for name, value in design if name in varying)


def zero_shot_lines(evaluations: list[Evaluation], bootstrap: Bootstrap,
                    axis: str | None = None) -> list[Line]:
    """Policies ordered by what they were trained on, each with its walkers along `axis`
    (default: the parameter that varies): one line per policy and design off the axis."""
    axis = axis or varying_axis(evaluations)
    pooled: dict[tuple[str, str, tuple], dict[float, list[Evaluation]]] = {}
    for evaluation in evaluations:
        x = evaluation.walker.get(axis, math.nan)
        if math.isnan(x):
            continue  # evaluated over a range of this parameter: no point on the axis
        key = (evaluation.policy_name, evaluation.trained_on.get(axis, ""),
               off_axis_design(evaluation.walker, axis))
        pooled.setdefault(key, {}).setdefault(x, []).append(evaluation)
    designs = {design for _, _, design in pooled}
    varying = {name for design in designs for name, value in design
               if len({dict(other).get(name) for other in designs}) > 1}
    lines = []
    for (policy, trained_on, design), by_x in pooled.items():
        walkers = describe_off_axis(design, varying, axis)
        stream = f"zero-shot|{policy}|{axis}" + (f"|{walkers}" if walkers else "")
        cells = []
        for x in sorted(by_x):
            returns = np.concatenate([e.returns for e in by_x[x]])
            falls = sum(e.falls for e in by_x[x])
            estimate = bootstrap.mean(returns, f"{stream}|{x}")
            cells.append(Cell(x, estimate, len(returns), falls))
        lines.append(Line(policy, axis, trained_on, cells, walkers))
    return sorted(lines, key=lambda line: (line.trained_span is None, line.trained_span or (0, 0),
                                           line.policy, line.walkers))


def matrix(lines: list[Line]) -> tuple[list[str], list[float], np.ndarray]:
    """(row labels, walker axis values, (policies, walkers) mean returns, NaN where not run)."""
    xs = sorted({cell.x for line in lines for cell in line.cells})
    values = np.full((len(lines), len(xs)), np.nan)
    for row, line in enumerate(lines):
        for cell in line.cells:
            values[row, xs.index(cell.x)] = cell.mean_return.value
    return [line.label for line in lines], xs, values
