"""Summarises experiments/outside_box.sh: per design and start, the frames at which the
deterministic evaluation during training first reached a mean return of 300 (">200k": never
within the budget), per seed and as the median, and the mean return at the first evaluation
(after the first batch past 25k frames: 30k, the metric's floor). Writes
docs/universal_design_outside.md."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.results import read_results  # noqa: E402

THRESHOLD = 300.0
BUDGET = 200_000
DESIGNS = {"long": "thigh 52, shin 52", "wide": "leg width 13", "strong": "motor torque 140"}
STARTS = {"universal": "universal_design", "leg34": "leg_34_trained", "scratch": "scratch"}


def first_reaching(evaluations: dict) -> float:
    for frames, mean in zip(evaluations["frames"], evaluations["mean_return"], strict=True):
        if mean >= THRESHOLD:
            return float(frames)
    return float("inf")


def main() -> int:
    lines = ["<!-- written by experiments/outside_box.py from results/outside__*.p -->", "",
             f"| design (outside the box) | start | frames to a deterministic mean of "
             f"{THRESHOLD:g}, seeds 1/2/3 | median | mean return at the first evaluation "
             f"(30k frames) |",
             "|---|---|---|---|---|"]
    for design, label in DESIGNS.items():
        for start, start_label in STARTS.items():
            reached, first = [], []
            for seed in (1, 2, 3):
                path = Path(f"results/outside__{design}__{start}__seed{seed}.p")
                if not path.exists():
                    continue
                evaluations = read_results(path)["evaluations"]
                reached.append(first_reaching(evaluations))
                first.append(evaluations["mean_return"][0])
            if not reached:
                continue
            shown = "/".join(f">{BUDGET // 1000}k" if np.isinf(f) else f"{f / 1000:.0f}k"
                             for f in reached)
            median = float(np.median(reached))
            median_text = f">{BUDGET // 1000}k" if np.isinf(median) else f"{median / 1000:.0f}k"
            lines.append(f"| {label} | {start_label} | {shown} | {median_text} | "
                         f"{np.mean(first):.0f} |")
    out = Path("docs/universal_design_outside.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
