"""Learning curves of the from-scratch leg-34 studies: the sample policy's and the defaults'.

Reads the committed per-episode CSVs in docs/data/ (so it needs no re-run) and writes
docs/sample_training.png:

    python experiments/plot_sample_training.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the headless backend)
import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "docs" / "data"
RUNS = {
    "leg_34_trained.csv": "noise std 0.5 -> 0.1 over 1.8M frames (the shipped policy)",
    "defaults_34.csv": "spec defaults: fixed noise std 0.5",
}
WINDOW = 100
"""Episodes in the running average, as run.py's score."""


def running_average(rewards: np.ndarray, window: int) -> np.ndarray:
    sums = np.cumsum(np.insert(rewards, 0, 0.0))
    counts = np.minimum(np.arange(1, len(rewards) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(rewards) + 1) - counts]) / counts


def main() -> None:
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, label in RUNS.items():
        with open(DATA / name, newline="") as handle:
            rows = list(csv.DictReader(handle))
        frames = np.array([float(row["frames"]) for row in rows])
        rewards = np.array([float(row["reward"]) for row in rows])
        axes.plot(frames / 1e6, running_average(rewards, WINDOW), label=label)
    axes.axhline(300, color="grey", linestyle="--", linewidth=1, label="300")
    axes.set_xlabel("frames (millions)")
    axes.set_ylabel(f"training return, running average of {WINDOW} episodes")
    axes.set_title("From scratch, leg length 34, default walker (terrain x2, 1500 steps)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    out = DATA.parent / "sample_training.png"
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
