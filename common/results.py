"""Per-episode results of a study, kept in memory and written atomically as pickle and CSV."""

from __future__ import annotations

import math
import pickle
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from common.checkpoint import atomic_write_bytes
from common.study_files import StudyFiles
from envs import DESIGN_PARAMETERS
from ppo.diagnostics import columns_to_csv

DESIGN_COLUMNS = tuple(DESIGN_PARAMETERS)
"""The body the episode was played with: for a design range, that episode's draw."""
COLUMNS = ("frames", "length", "reward", "wall_time", "action_std", *DESIGN_COLUMNS)
SCORE_WINDOW = 100
"""Episodes in the running average that picks the best checkpoint."""


class ColumnLog(Protocol):
    """A log written beside the episodes: its columns, and the same as CSV (the updates'
    `ppo.diagnostics.UpdateLog`, the evaluations' `study.evaluations.EvaluationLog`)."""

    columns: dict[str, list[float]]

    def to_csv(self) -> str: ...


class EpisodeLog:
    """Columns of completed episodes plus the running-average score used to pick the best policy.

    `frames` is the study's cumulative frame count when the episode ended, `wall_time`
    seconds since the study started, `action_std` the exploration noise in force, then the
    walker's design (thigh and shin resolved).
    """

    def __init__(self, columns: dict[str, list[float]] | None = None) -> None:
        self.columns: dict[str, list[float]] = {name: [] for name in COLUMNS}
        if columns:
            episodes = len(columns["reward"])
            for name in COLUMNS:
                # Studies from before the design columns resume with them unknown (NaN).
                self.columns[name] = list(columns.get(name, [math.nan] * episodes))
        self.recent = deque(self.columns["reward"][-SCORE_WINDOW:], maxlen=SCORE_WINDOW)

    def truncate(self, episodes: int) -> None:
        """Keep only the first `episodes` episodes."""
        for values in self.columns.values():
            del values[episodes:]
        self.recent = deque(self.columns["reward"][-SCORE_WINDOW:], maxlen=SCORE_WINDOW)

    def __len__(self) -> int:
        return len(self.columns["reward"])

    def add(self, frames: int, length: int, reward: float, wall_time: float,
            action_std: float, design: Sequence[float]) -> None:
        """`design`: values in DESIGN_COLUMNS order."""
        values = (frames, length, reward, wall_time, action_std, *design)
        for name, value in zip(COLUMNS, values, strict=True):
            self.columns[name].append(value)
        self.recent.append(reward)

    @property
    def running_average(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else float("nan")

    @property
    def episodes_averaged(self) -> int:
        """How many episodes the running average is over (SCORE_WINDOW once enough ended)."""
        return len(self.recent)

    @property
    def window_full(self) -> bool:
        return len(self.recent) == SCORE_WINDOW

    def to_csv(self) -> str:
        return columns_to_csv(self.columns, COLUMNS)


def write_results(files: StudyFiles, log: EpisodeLog, summary: dict[str, Any],
                  updates: ColumnLog, evaluations: ColumnLog) -> tuple[Path, Path]:
    """`<save_name>.p` (a dict: the `summary` keys plus `episodes`, `updates` and
    `evaluations`), the episodes as `<save_name>.csv`, the updates as
    `<save_name>_updates.csv` and the evaluations during training as
    `<save_name>_evaluations.csv`."""
    payload = {**summary,
               "episodes": {name: list(values) for name, values in log.columns.items()},
               "updates": {name: list(values) for name, values in updates.columns.items()},
               "evaluations": {name: list(values)
                               for name, values in evaluations.columns.items()}}
    atomic_write_bytes(files.results, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    atomic_write_bytes(files.csv, log.to_csv().encode())
    atomic_write_bytes(files.result("updates"), updates.to_csv().encode())
    atomic_write_bytes(files.result("evaluations"), evaluations.to_csv().encode())
    return files.results, files.csv
