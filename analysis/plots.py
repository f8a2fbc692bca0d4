"""PNG figures: learning curves with bootstrap bands, and zero-shot transfer."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from analysis.metrics import GroupMetrics, Settings, frame_grid  # noqa: E402
from analysis.report import format_frames  # noqa: E402
from analysis.stats import Bootstrap  # noqa: E402
from analysis.zero_shot import Line, matrix  # noqa: E402

FRAMES_AXIS = FuncFormatter(lambda frames, _: format_frames(frames) if frames > 0 else "0")


def grid_shape(count: int, max_columns: int = 3) -> tuple[int, int]:
    columns = min(count, max_columns)
    return math.ceil(count / columns), columns


def plot_learning_curves(path: Path, panels: list[list[GroupMetrics]], settings: Settings,
                         bootstrap: Bootstrap) -> None:
    """One subplot per panel (e.g. per leg length): each group's mean curve and its band."""
    rows, columns = grid_shape(len(panels))
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4 * rows), squeeze=False,
                                sharey=True)
    for axis, members in zip(axes.flat, panels, strict=False):
        for metrics in members:
            group = metrics.group
            grid = frame_grid(metrics.budget, settings.points)
            curves = metrics.curves
            low, high = bootstrap.mean_band(curves, f"band|{group.panel_label}|{group.label}")
            line, = axis.plot(grid, curves.mean(axis=0),
                              label=f"{group.label} ({len(curves)} seed"
                                    f"{'s' if len(curves) > 1 else ''})")
            if len(curves) > 1:
                axis.fill_between(grid, low, high, color=line.get_color(), alpha=0.2,
                                  linewidth=0)
        axis.axhline(settings.threshold, color="grey", linestyle="--", linewidth=1,
                     label=f"threshold {settings.threshold:g}")
        axis.set_title(members[0].group.panel_label)
        axis.set_xlabel("frames")
        axis.xaxis.set_major_formatter(FRAMES_AXIS)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small", loc="best")
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis in axes[:, 0]:
        axis.set_ylabel(f"return (running average of {settings.window} episodes)")
    figure.suptitle(f"Learning curves: mean over seeds, band: {bootstrap.confidence:.0%} "
                    f"bootstrap interval of the mean", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


MAX_MATRIX_COLUMNS = 12
"""Beyond this many walkers the heatmap's numbers no longer fit; the line plot says it all."""


def plot_zero_shot(path: Path, lines: list[Line]) -> None:
    """Mean return against the walker's axis parameter, one line per policy (interval over
    episodes), with what it was trained on marked (a dotted line, or a band for a range);
    beside it a policy x walker heatmap when several policies were evaluated."""
    labels, legs, values = matrix(lines)
    axis_name = lines[0].axis.replace("_", " ") if lines else "design"
    with_matrix = len(lines) > 1 and 1 < len(legs) <= MAX_MATRIX_COLUMNS
    figure, axes = plt.subplots(1, 2 if with_matrix else 1, squeeze=False,
                                figsize=(12 if with_matrix else 6.5, 4.5))
    axis = axes[0, 0]
    for line in lines:
        legs_run = [cell.x for cell in line.cells]
        means = np.array([cell.mean_return.value for cell in line.cells])
        lows = np.array([cell.mean_return.low for cell in line.cells])
        highs = np.array([cell.mean_return.high for cell in line.cells])
        errors = np.nan_to_num(np.vstack([means - lows, highs - means]))
        drawn = axis.errorbar(legs_run, means, yerr=errors, marker="o", capsize=3,
                              label=line.label)
        span = line.trained_span
        if span is not None and span[0] == span[1]:
            axis.axvline(span[0], color=drawn[0].get_color(), linestyle=":", linewidth=1)
        elif span is not None:
            axis.axvspan(*span, color=drawn[0].get_color(), alpha=0.08)
    axis.set_xlabel(f"walker {axis_name} (evaluated on)")
    axis.set_ylabel("mean return (deterministic policy)")
    axis.set_title(f"Zero-shot transfer (dotted/shaded: {axis_name} trained on)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    if with_matrix:
        axis = axes[0, 1]
        image = axis.imshow(values, aspect="auto", cmap="viridis")
        axis.set_xticks(range(len(legs)), [f"{leg:g}" for leg in legs])
        axis.set_yticks(range(len(labels)), labels, fontsize="small")
        axis.set_xlabel(f"walker {axis_name} (evaluated on)")
        axis.set_title("mean return: policy x walker")
        middle = np.nanmin(values) + 0.6 * (np.nanmax(values) - np.nanmin(values))
        for (row, column), value in np.ndenumerate(values):
            if not np.isnan(value):  # dark text on the bright end of viridis
                axis.text(column, row, f"{value:.0f}", ha="center", va="center",
                          color="black" if value > middle else "white", fontsize="x-small")
        figure.colorbar(image, ax=axis)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
