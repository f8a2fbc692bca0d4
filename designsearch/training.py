"""Training runs of the staged search: each design fine-tuned from the search's policy by
run.py, one run per (design, training seed), as one sweep (`sweeps/`: Ray, one run per core,
finished runs skipped, interrupted ones resumed, `<NAME>_<STAGE>_manifest.json`).

The runs use the low-noise schedule that suits fine-tuning from a universal policy
(exploration noise 0.2 falling to 0.1 over the first 60% of the budget: docs/results.md,
"Fine-tuning from universal_24_46"). A stage that reports at several frame checkpoints trains
to the first, then extends the same runs (`--resume` with a larger `--total_frames`): the
schedule is fixed at the first checkpoint's frames, so each checkpoint is one run observed
further on, not a run planned for that budget. The policy scored is the one each run ends
with (`NAME.last.pt`): the policy at that frame count, not one picked on other terrains.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from designsearch.project import MODEL_SUFFIXES, Paths, StudyFailed, Sweep, expand, run_sweep
from designsearch.scoring import Course

FINE_TUNE_SCHEDULE = {"action_std_start": "0.2", "action_std_final": "0.1",
                      "action_std_end": "0.6"}


@dataclass(frozen=True)
class TrainingRun:
    """One design trained with one seed; `label` names the design within its stage."""

    label: str
    design: dict[str, float]
    seed: int


class Trainer(Protocol):
    """Trains a stage's runs to a frame budget and hands back each run's policy (a test
    injects a cheap one)."""

    def train(self, stage: str, runs: list[TrainingRun], frames: int) -> int:
        """0 when every run reached `frames`; 128 + signal if interrupted; 1 if one failed."""

    def policy(self, stage: str, run: TrainingRun) -> tuple[str, bytes]:
        """The trained policy's name and checkpoint bytes."""


def fine_tune_flags(policy: str, design: dict[str, float | str], frames: int, course: Course,
                    save_name: str | None = None) -> dict[str, str]:
    """run.py's flags of a training run on `design` (before --train_fixed); with `save_name`,
    a whole command line that design.py checks before the search starts."""
    flags = {"initial_model": policy,
             **{name: value if isinstance(value, str) else f"{value:g}"
                for name, value in design.items()},
             "total_frames": str(frames),
             "terrain_length_scale": f"{course.terrain_length_scale:g}",
             "max_time_steps": str(course.max_time_steps),
             "fall_penalty": f"{course.fall_penalty:g}", **FINE_TUNE_SCHEDULE}
    return {"save_name": save_name, **flags} if save_name else flags


@dataclass(frozen=True)
class SweepTrainer:
    """run.py runs as a sweep on Ray (a local one unless `address` names a cluster)."""

    save_name: str
    policy_path: Path
    course: Course
    fixed: dict[str, str]
    models_dir: Path
    results_dir: Path
    address: str | None
    command: str
    quiet: bool

    def run_name(self, stage: str, run: TrainingRun) -> str:
        return f"{self.save_name}_{stage}_{run.label}__seed{run.seed}"

    def train(self, stage: str, runs: list[TrainingRun], frames: int) -> int:
        studies = []
        for label in dict.fromkeys(run.label for run in runs):
            design_runs = [run for run in runs if run.label == label]
            flags = {**fine_tune_flags(str(self.policy_path.resolve()), design_runs[0].design,
                                       frames, self.course), **self.fixed}
            studies += expand(f"{self.save_name}_{stage}_{label}",
                              {"seed": [str(run.seed) for run in design_runs]}, flags)
        paths = Paths(self.models_dir.resolve(), self.results_dir.resolve(), None)
        remote = self.address not in (None, "local")
        sweep = Sweep(f"{self.save_name}_{stage}",
                      {"design": list(dict.fromkeys(run.label for run in runs)),
                       "seed": sorted({str(run.seed) for run in runs})},
                      {}, paths, 1, self.address if remote else None, 1, remote, self.command,
                      studies)
        with open(os.devnull, "w") as null:
            return run_sweep(sweep, null if self.quiet else sys.stdout)

    def policy(self, stage: str, run: TrainingRun) -> tuple[str, bytes]:
        path = self.policy_path_of(stage, run)
        try:
            return self.run_name(stage, run), path.read_bytes()
        except OSError as error:
            raise StudyFailed(f"stage {stage}: cannot read the trained policy {path}: "
                              f"{error.strerror}") from None

    def policy_path_of(self, stage: str, run: TrainingRun) -> Path:
        return self.models_dir / f"{self.run_name(stage, run)}{MODEL_SUFFIXES['last']}"
