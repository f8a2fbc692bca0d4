"""What a run says about itself before it starts: which study or policy, which walker, how long,
where its files go. A training study's first progress line comes only after its first batch
(seconds to minutes), so the header is what tells the user the command did what they meant."""

from __future__ import annotations

import math
from pathlib import Path

from common.config import Config
from common.study_files import StudyFiles
from evaluation.evaluate import describe_walker
from study.evaluations import describe_protocol
from study.tensorboard_log import tensorboard_folder


def describe_stepping(config: Config) -> str:
    workers = config.worker_processes
    walkers = f"{config.num_envs} walker{'s' if config.num_envs > 1 else ''}"
    if workers == 0:
        return f"{walkers} stepped in this process"
    return f"{walkers} in {workers} worker process{'es' if workers > 1 else ''}"


def describe_study(config: Config, transfer_summary: str, files: StudyFiles) -> str:
    """The header of a training study; `transfer_summary` is `transfer.prepare`'s ("" when
    training from scratch)."""
    origin = "from scratch" if not config.has_initial_model else "by transfer"
    lines = [
        f"study {config.save_name}: {config.total_frames:,} frames {origin}, seed {config.seed}, "
        f"{describe_stepping(config)}",
        describe_walker(config),
        f"files: {files.best} (the best policy; {files.last.name} to --resume), "
        f"{files.results}, {files.csv.name}, {files.result('updates').name} and "
        f"{files.result('evaluations').name}",
        describe_protocol(config),
    ]
    folder = tensorboard_folder(config)
    if folder is not None:
        lines.append(f"tensorboard: {folder} (tensorboard --logdir {folder.parent})")
    if transfer_summary:
        lines.append(transfer_summary)
    return "\n".join(lines)


def describe_resume(frames: int, episodes: int, best_score: float, checkpoint: Path,
                    total_frames: int, best_by: str = "running_average",
                    planned_frames: int | None = None) -> str:
    """`planned_frames`: the budget the study was run with until now; a larger --total_frames
    extends it, and the line says so."""
    measure = "best evaluation" if best_by == "eval" else "best running average"
    best = (f"{measure} {best_score:.1f}" if math.isfinite(best_score)
            else f"no {measure} yet")
    extended = (f" (extended from {planned_frames:,} by --total_frames)"
                if planned_frames is not None and total_frames > planned_frames else "")
    return (f"resumed at {frames:,} frames of {total_frames:,}{extended} from {checkpoint}: "
            f"{episodes:,} episodes so far, {best}")
