"""Per-episode results of a study, kept in memory and written atomically as pickle and CSV, and
read back without running code from the file."""

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


class UnreadableResults(ValueError):
    """A results file that cannot be read, is damaged, or holds more than plain data."""


class PlainDataUnpickler(pickle.Unpickler):
    """Unpickles only what `write_results` writes: dicts, lists, strings, numbers, booleans and
    None, which pickle encodes without naming any class.

    A results folder is shared, downloaded and unpacked by users; a pickle naming a class or
    function (`os.system`, say) could run code when loaded, so any such name is refused before
    it is looked up.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise UnreadableResults(f"refused, it holds more than plain data ({module[:60]}."
                                f"{name[:60]})")


def read_results(path: Path) -> dict[str, Any]:
    """The dict `write_results` wrote to `path`; UnreadableResults (its reason in a few words)
    if it is missing, damaged, another kind of file or a pickle of anything but plain data."""
    try:
        with Path(path).open("rb") as handle:
            results = PlainDataUnpickler(handle).load()
    except UnreadableResults:
        raise
    except OSError as error:
        raise UnreadableResults(f"cannot be read ({error.strerror or error})") from None
    except Exception as error:  # noqa: BLE001 (damaged bytes fail in any of these ways)
        raise UnreadableResults(f"damaged or not a results file ({type(error).__name__})") \
            from None
    if not isinstance(results, dict) or "frames" not in results:
        raise UnreadableResults("not a transfer_rl results file")
    return results


def stopped_before_first_checkpoint(files: StudyFiles) -> bool:
    """Whether the study left results but nothing to resume from or lose: it was stopped
    during its first batch (no `.last.pt`, results of 0 frames). It is started afresh, not
    refused. A policy beside such results is that batch's untrained one (a kill -9 came
    between saving it and the first `.last.pt`): a new study writes its results of 0 frames
    before any policy, so a policy without them (a shipped model) is never taken for one."""
    if files.last.exists():
        return False
    try:
        results = read_results(files.results)
    except UnreadableResults:  # missing, or not a results file of ours: someone else's
        return False
    return results.get("frames") == 0
