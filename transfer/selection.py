"""`--initial_model=auto`: choose the source policy by how well it walks the target design.

Which trained policy transfers best to a new design is an empirical question (a policy trained
at leg length 34 falls at 28; a design-conditioned one may walk it at once), so it is answered
empirically: every compatible policy in the model folders is run, deterministically and
zero-shot, for a few episodes on the study's own walker, and the best mean return wins.

Compatible means the policy can be loaded into the study's network and read its walkers'
observations: the same hidden layers and action size, and, for a study over a design range,
design inputs that cover every ranged parameter. Resume checkpoints (`NAME.last.pt`) and
unreadable files are not candidates.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import envs
import transfer
from study.checkpoint import architecture_of, load_checkpoint, policy_from_checkpoint
from study.config import Config
from study.errors import UsageError
from study.study_files import StudyFiles
from transfer.loading import (
    design_inputs_of,
    model_dirs,
    model_files,
)

AUTO = "auto"


def is_auto(initial_model: str) -> bool:
    """Whether an --initial_model value asks for the ranking (in any case, as run.py takes it)."""
    return initial_model.lower() == AUTO


AUTO_EPISODES = 3
"""Episodes per candidate: enough to tell a walker from a faller, seconds per model."""


@dataclass(frozen=True)
class Ranked:
    path: Path
    mean_return: float
    conditioned_on: tuple[str, ...]
    outside: tuple[str, ...] = ()
    """How the target walker lies outside what the policy learned (`envs.outside_training`)."""


@dataclass(frozen=True)
class Choice:
    config: Config
    """The study's config with `initial_model` set to the chosen policy's path."""
    report: str
    """The ranking, for the console, the transfer summary and the results."""


def readable_checkpoint(path: Path) -> dict[str, Any] | str:
    """The checkpoint at `path`, checked as any --initial_model is, or why it is unusable."""
    try:
        return load_checkpoint(path)
    except UsageError as error:
        return str(error).removeprefix(f"{path}: ")


def compatible(checkpoint: dict[str, Any], config: Config, path: Path) -> bool:
    """Whether `checkpoint` fits the network and observations of the study `config` describes."""
    architecture = architecture_of(checkpoint["state_dict"])
    if architecture is None or architecture[2] != list(config.hidden_layers):
        return False
    try:
        inputs = transfer.design_inputs(config, transfer.Source(path, checkpoint))
    except UsageError:
        return False
    return architecture[:2] == (envs.BODY_OBS_DIM + len(inputs), envs.ACT_DIM)


def zero_shot_return(checkpoint: dict[str, Any], config: Config) -> float:
    """Mean return of `AUTO_EPISODES` deterministic episodes on the study's walker."""
    from evaluation.evaluate import play  # evaluation imports transfer: import it when used

    policy = policy_from_checkpoint(checkpoint).eval()  # load_checkpoint checked it
    episodes = play(config, policy, AUTO_EPISODES, design_inputs=design_inputs_of(checkpoint))
    return float(np.mean([episode.episode_return for episode in episodes]))


def rank_models(config: Config, skipped: list[str] | None = None) -> list[Ranked]:
    """The compatible policies, best first; each unreadable file is added to `skipped` as
    `path (why)`."""
    ranked = []
    for path in model_files(Path(config.models_dir), include_resume=False):
        checkpoint = readable_checkpoint(path)
        if isinstance(checkpoint, str):
            if skipped is not None:
                skipped.append(f"{path} ({checkpoint})")
            continue
        if not compatible(checkpoint, config, path):
            continue
        trained_on = checkpoint.get("env") if isinstance(checkpoint.get("env"), dict) else {}
        ranked.append(Ranked(path, zero_shot_return(checkpoint, config),
                             tuple(design_inputs_of(checkpoint)),
                             tuple(envs.outside_training(trained_on, config.env_kwargs()))))
    return sorted(ranked, key=lambda entry: -entry.mean_return)


def describe_ranking(ranked: list[Ranked], config: Config, seconds: float) -> str:
    walker = envs.describe_design(config.env_kwargs())
    lines = [f"auto: {len(ranked)} compatible policies, each run for {AUTO_EPISODES} "
             f"deterministic episodes on the target walker ({walker}) in {seconds:.1f} s:"]
    for place, entry in enumerate(ranked, start=1):
        conditioned = (f" (conditioned on {', '.join(entry.conditioned_on)})"
                       if entry.conditioned_on else "")
        outside = f" [outside what it learned: {'; '.join(entry.outside)}]" if entry.outside else ""
        lines.append(f"auto: {place}. {entry.path}: mean return {entry.mean_return:.1f}"
                     f"{conditioned}{outside}")
    lines.append(f"auto: chose {ranked[0].path}")
    return "\n".join(lines)


def choose_initial_model(config: Config) -> Choice:
    """Rank the candidates and return the config that names the winner."""
    started = time.monotonic()
    skipped: list[str] = []
    ranked = rank_models(config, skipped)
    if not ranked:
        folders = ", ".join(map(str, model_dirs(Path(config.models_dir))))
        unreadable = f" ({len(skipped)} unreadable, skipped)" if skipped else ""
        raise UsageError(f"--initial_model: auto found no policy in {folders} with "
                         f"--hidden_layers={list(config.hidden_layers)} that can observe this "
                         f"study's walkers{unreadable}; name a model or train from scratch")
    report = "\n".join([*(f"auto: skipped {entry}" for entry in skipped),
                        describe_ranking(ranked, config, time.monotonic() - started)])
    return Choice(dataclasses.replace(config, initial_model=str(ranked[0].path)), report)


def resolve_initial_model(config: Config) -> Choice:
    """`--initial_model=auto` resolved to a path (any other value is kept as it is).

    A resumed study keeps the choice it made when it started, read from its resume checkpoint,
    so that it continues the same experiment.
    """
    if not is_auto(config.initial_model):
        return Choice(config, "")
    last_path = StudyFiles(Path(config.models_dir), Path(config.results_dir),
                           config.save_name).last
    files = StudyFiles(Path(config.models_dir), Path(config.results_dir), config.save_name)
    if not config.resume or files.stopped_before_first_checkpoint():  # a new study
        return choose_initial_model(config)
    if not last_path.is_file():  # nothing to resume: the study says so, no ranking first
        return Choice(config, "")
    saved = load_checkpoint(last_path, "resume").get("config", {})
    chosen = saved.get("initial_model") if isinstance(saved, dict) else None
    if isinstance(chosen, str):
        return Choice(dataclasses.replace(config, initial_model=chosen),
                      f"auto: resumed with the policy chosen at the start, {chosen}")
    return choose_initial_model(config)


def describe_model(path: Path, checkpoint: dict[str, Any] | str) -> str:
    """One line of `--list_models`: name, design, frames, score, conditioned or not (or why
    the file is unreadable)."""
    if isinstance(checkpoint, str):
        return f"{path}: unreadable: {checkpoint}"
    env = checkpoint.get("env") if isinstance(checkpoint.get("env"), dict) else {}
    frames, score = checkpoint.get("frames"), checkpoint.get("score")
    inputs = design_inputs_of(checkpoint)
    design = ", ".join(f"{name} {value}" for name, value in envs.design_of(env).items())
    parts = [f"trained on {design}" if env else "design unknown",
             f"{frames:,} frames" if isinstance(frames, int) else "frames unknown",
             f"score {score:.1f}" if isinstance(score, int | float) and math.isfinite(score)
             else "no score",
             f"conditioned on {', '.join(inputs)}" if inputs else "fixed design",
             f"hidden layers {checkpoint.get('hidden_layers')}"]
    return f"{path}: " + "; ".join(parts)


def list_models(models_dir: Path) -> str:
    files = model_files(models_dir, include_resume=False)
    if not files:
        return f"no policies in {', '.join(map(str, model_dirs(models_dir)))}"
    return "\n".join(describe_model(path, readable_checkpoint(path)) for path in files)
