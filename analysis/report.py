"""Markdown tables of the transfer metrics and of zero-shot transfer."""

from __future__ import annotations

import math

from analysis.metrics import Improvement, Row, Settings
from analysis.stats import Bootstrap, Estimate
from analysis.zero_shot import Line


def format_frames(frames: float) -> str:
    if frames >= 1e6:
        return f"{frames / 1e6:.2f}M"
    if frames >= 1e4:
        return f"{frames / 1e3:.0f}k"
    if frames >= 1e3:
        return f"{frames / 1e3:.1f}k"
    return f"{frames:.0f}"


def format_estimate(estimate: Estimate, kind: str = "reward") -> str:
    """'123.4 [110.2, 131.0]'; frames as 45k; ratios with two decimals; '—' when undefined."""
    if math.isnan(estimate.value):
        return "—"
    def one(value: float) -> str:
        if kind == "frames":
            return format_frames(value)
        if kind == "ratio":
            return f"{value:.2f}"
        return f"{value:.1f}"
    text = f"{estimate.bound} {one(estimate.value)}" if estimate.bound else one(estimate.value)
    if estimate.has_interval:
        text += f" [{one(estimate.low)}, {one(estimate.high)}]"
    return text


def format_time(row: Row) -> str:
    reached, seeds = row.reached
    if reached == 0:
        return f"not reached in {format_frames(row.budget)}"
    text = format_estimate(row.time_to_threshold, "frames")
    return text if reached == seeds else f"{text} ({reached}/{seeds} reached)"


def format_speedup(row: Row) -> str:
    """Undefined without a baseline, or when neither group's time is known (both censored)."""
    speedup = row.threshold_speedup
    if not row.has_baseline or math.isnan(speedup.value) or speedup.bound == "?":
        return "—"
    return format_estimate(speedup, "ratio") + "x"


def metrics_table(rows: list[Row], settings: Settings) -> str:
    show_panel = len({row.panel for row in rows}) > 1
    header = (["walker"] if show_panel else []) + [
        "strategy", "seeds",
        f"initial reward (first {settings.jumpstart_episodes} ep.)",
        "jumpstart vs scratch",
        f"asymptotic (last {settings.asymptote_fraction:.0%} of frames)",
        "asymptotic IQM",
        "area under curve (mean reward)",
        "transfer ratio",
        "P(AUC > scratch)",
        f"frames to {settings.threshold:g}",
        "speedup to threshold vs scratch",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = ([row.panel] if show_panel else []) + [
            row.label, str(row.seeds),
            format_estimate(row.initial),
            format_estimate(row.jumpstart) if row.has_baseline else "—",
            format_estimate(row.asymptotic),
            format_estimate(row.asymptotic_iqm),
            format_estimate(row.auc),
            format_estimate(row.transfer_ratio, "ratio") if row.has_baseline else "—",
            format_estimate(row.improvement, "ratio") if row.has_baseline else "—",
            format_time(row),
            format_speedup(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def definitions(settings: Settings, bootstrap: Bootstrap, floors: dict[str, float | None],
                budgets: dict[str, int]) -> str:
    floor_text = "; ".join(f"{panel}: {floor:.1f}" for panel, floor in floors.items()
                           if floor is not None)
    if len(set(budgets.values())) == 1:
        budget_text = f"{next(iter(budgets.values())):,} frames"
    else:
        budget_text = "; ".join(f"{panel}: {frames:,} frames" for panel, frames in budgets.items())
    floor_rule = ("the lowest point of the compared curves" if settings.ratio_floor is None
                  else f"fixed at {settings.ratio_floor:g}")
    return f"""\
Each value is the mean over seeds with a {bootstrap.confidence:.0%} percentile-bootstrap interval \
across seeds in brackets (`scipy.stats.bootstrap`, {bootstrap.resamples:,} resamples, seed \
{bootstrap.seed}; groups resampled independently; no interval with one seed). Curves are the \
running average of the last {settings.window} episodes' returns, \
read on a grid of {settings.points} equally spaced frames up to the fewest frames any compared \
study ran ({budget_text}).

- *Initial reward*: mean return of the first {settings.jumpstart_episodes} episodes; \
*jumpstart* is that minus the from-scratch group's.
- *Asymptotic*: mean return of the episodes that ended in the last \
{settings.asymptote_fraction:.0%} of the frames.
- *Asymptotic IQM*: the interquartile mean over seeds of the asymptotic performance \
(rliable's robust aggregate: the mean of the middle half of the seeds' values, \
`scipy.stats.trim_mean(values, 0.25)`; with fewer than 4 seeds it is the plain mean).
- *Area under curve*: mean of the learning curve over the frame grid (area / frames).
- *P(AUC > scratch)*: the probability of improvement (rliable): the chance that a seed of this \
group has a larger area under the curve than a seed of the from-scratch group, ties counting \
half. 1: every seed beats every scratch seed; 0.5: no difference. The table below gives it for \
every two groups of a walker.
- *Transfer ratio*: (AUC - floor) / (AUC of scratch - floor), the ratio of the areas above a \
floor, because returns can be negative; the floor is {floor_rule} \
({floor_text or "no from-scratch group"}). Above 1: more reward over the budget than scratch.
- *Frames to {settings.threshold:g}*: frames until the running average over a full window of \
{settings.window} episodes first reached {settings.threshold:g} (a partial first window does not \
count); a seed that never did counts as the full budget, making the mean a lower \
bound (">="). *Speedup*: scratch's frames to threshold / this group's (">=" or "<=" is a \
bound for the same reason).
"""


def zero_shot_table(lines: list[Line]) -> str:
    axis = lines[0].axis.replace("_", " ") if lines else "design"
    rows = [f"| policy | walker {axis} | mean return | falls | episodes |",
            "|---|---|---|---|---|"]
    for line in lines:
        for cell in line.cells:
            rows.append(f"| {line.label} | {cell.x:g} | {format_estimate(cell.mean_return)} | "
                        f"{cell.fall_rate:.0%} | {cell.episodes} |")
    return "\n".join(rows) + "\n"


def improvement_table(improvements: list[Improvement]) -> str:
    """Per panel, a matrix: P(the row's group has a larger AUC than the column's)."""
    blocks = []
    panels = list(dict.fromkeys(item.panel for item in improvements))
    for panel in panels:
        items = [item for item in improvements if item.panel == panel]
        labels = list(dict.fromkeys([item.better for item in items]))
        cells = {(item.better, item.than): item.probability for item in items}
        title = f"**{panel}**: " if len(panels) > 1 else ""
        lines = [f"{title}P(row beats column), area under curve", "",
                 "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for row in labels:
            lines.append(f"| {row} | " + " | ".join(
                "—" if row == column else format_estimate(cells[row, column], "ratio")
                for column in labels) + " |")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)
